package main

import (
	"fmt"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// AuthPool is auth-service's pool (internal/database): 25 open, 10 idle, 5 min lifetime, 2 min idle.
var AuthPool = Pool{MaxOpen: 25, MaxIdle: 10, MaxLifetime: 5 * time.Minute, MaxIdleTime: 2 * time.Minute}

// User has the shape of auth-service's model: a unique, indexed email and timestamps.
type User struct {
	ID        uint   `gorm:"primaryKey"`
	Name      string `gorm:"not null"`
	Email     string `gorm:"unique;not null;index:idx_users_email"`
	Password  string `gorm:"not null"`
	CreatedAt time.Time
	UpdatedAt time.Time
	Sessions  []Session `gorm:"foreignKey:UserID"`
}

type Session struct {
	ID          uint      `gorm:"primaryKey"`
	UserID      uint      `gorm:"not null;index"`
	AccessToken string    `gorm:"unique;not null"`
	ExpiresAt   time.Time `gorm:"not null"`
	CreatedAt   time.Time
}

// openGorm opens the database as auth-service does: gorm.Open(postgres.Open(url)) with pgx's default
// (named, cached prepared statements), then the pool limits on the *sql.DB beneath.
func openGorm(url string) (*gorm.DB, error) {
	db, err := gorm.Open(postgres.Open(url), &gorm.Config{Logger: logger.Default.LogMode(logger.Silent)})
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	AuthPool.apply(sqlDB)
	return db, nil
}

// gormLoad: AutoMigrate (as every auth-service pod does at start), then per operation a user is created, read back
// by email, updated and given a session: the queries of a sign-up and a login.
func gormLoad(url string, load Load, run string) Result {
	db, err := openGorm(url)
	if err != nil {
		return Result{Fatal: err.Error()}
	}
	if err := db.AutoMigrate(&User{}, &Session{}); err != nil {
		return Result{Fatal: "AutoMigrate: " + err.Error()}
	}
	var t tally
	load.run(&t, func(w, i int) (string, error) {
		email := fmt.Sprintf("%s-%d-%d@velure.test", run, w, i)
		user := User{Name: "u", Email: email, Password: "x"}
		if err := db.Create(&user).Error; err != nil {
			return "", err
		}
		var found User
		if err := db.Where("email = ?", email).First(&found).Error; err != nil {
			return email, err
		}
		if err := db.Model(&found).Update("name", "signed-in").Error; err != nil {
			return email, err
		}
		session := Session{UserID: found.ID, AccessToken: email, ExpiresAt: time.Now().Add(time.Hour)}
		return email, db.Create(&session).Error
	})
	if sqlDB, err := db.DB(); err == nil {
		sqlDB.Close()
	}
	return t.result
}
