package main

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	_ "github.com/golang-migrate/migrate/v4/source/file"
)

// migrateUp is publish-order-service's start (internal/database RunMigrations): golang-migrate's postgres driver on
// the service's own pool, which takes pg_advisory_lock on one connection of it, applies what is missing, unlocks.
func migrateUp(url, dir string) Result {
	db, err := openPq(url)
	if err != nil {
		return Result{Fatal: err.Error()}
	}
	defer db.Close()
	m, err := newMigrator(db, dir)
	if err != nil {
		return Result{Fatal: err.Error()}
	}
	result := Result{Ops: 1}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		result.Failed = 1
		result.Errors = map[string]int{errorKind(err): 1}
	}
	version, dirty, err := m.Version()
	if err != nil && !errors.Is(err, migrate.ErrNilVersion) {
		result.Failed = 1
		result.Errors = map[string]int{errorKind(err): 1}
	}
	result.Version, result.Dirty = version, dirty
	return result
}

// newMigrator is golang-migrate on the service's pool and a migrations directory, as the service builds it.
func newMigrator(db *sql.DB, dir string) (*migrate.Migrate, error) {
	driver, err := postgres.WithInstance(db, &postgres.Config{})
	if err != nil {
		return nil, fmt.Errorf("create migration driver: %w", err)
	}
	m, err := migrate.NewWithDatabaseInstance(fmt.Sprintf("file://%s", dir), "postgres", driver)
	if err != nil {
		return nil, fmt.Errorf("create migration instance: %w", err)
	}
	return m, nil
}
