package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/lib/pq"
	"gorm.io/gorm"
)

// serve is a velure service's stand-in for the real node (tests/e2e/realNode.test.ts): what auth-service or
// publish-order-service does with its database at start and per request, over HTTP on APP_PORT, with POSTGRES_URL
// read from the environment as velure's config packages read it. /health answers once the start is done, as
// velure's readiness probes expect. Each request does one read and one write and answers with what the server saw.
func serve(service, migrations string) error {
	url := os.Getenv("POSTGRES_URL")
	if url == "" {
		return errors.New("POSTGRES_URL is not set")
	}
	port := os.Getenv("APP_PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	switch service {
	case "auth":
		if err := authRoutes(mux, url); err != nil {
			return err
		}
	case "orders":
		if err := orderRoutes(mux, url, migrations); err != nil {
			return err
		}
	default:
		return fmt.Errorf("serve: -service is auth or orders, not %q", service)
	}
	log.Printf("%s listening on :%s", service, port)
	server := &http.Server{Addr: ":" + port, Handler: mux}
	if service == "orders" {
		return serveUntilTerm(server)
	}
	// auth-service runs gin's router.Run: no signal handler, so SIGTERM ends it at once.
	return server.ListenAndServe()
}

// serveUntilTerm is publish-order-service's stop: on SIGTERM, http.Server.Shutdown with 10 s for the requests in
// flight, then exit 0 (its main.go: signal.NotifyContext, srv.Shutdown under a 10 s timeout).
func serveUntilTerm(server *http.Server) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed := make(chan error, 1)
	go func() { failed <- server.ListenAndServe() }()
	select {
	case err := <-failed:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := server.Shutdown(shutdown); err != nil {
		return err
	}
	log.Print("shutdown complete")
	return nil
}

// answer writes what one request did: the rows it wrote and read, and the address the server saw it come from.
func answer(w http.ResponseWriter, body map[string]any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// authRoutes: auth-service's start (GORM on pgx, its pool, AutoMigrate) and a sign-up followed by a login.
func authRoutes(mux *http.ServeMux, url string) error {
	db, err := openGorm(url)
	if err != nil {
		return err
	}
	if err := db.AutoMigrate(&User{}, &Session{}); err != nil {
		return fmt.Errorf("AutoMigrate: %w", err)
	}
	mux.HandleFunc("POST /register", func(w http.ResponseWriter, _ *http.Request) {
		email := fmt.Sprintf("%s@velure.test", randomID())
		err := db.Transaction(func(tx *gorm.DB) error {
			user := User{Name: "u", Email: email, Password: "x"}
			if err := tx.Create(&user).Error; err != nil {
				return err
			}
			var found User
			if err := tx.Where("email = ?", email).First(&found).Error; err != nil {
				return err
			}
			return tx.Create(&Session{UserID: found.ID, AccessToken: email, ExpiresAt: time.Now().Add(time.Hour)}).Error
		})
		var client string
		if err == nil {
			err = db.Raw("SELECT coalesce(host(inet_client_addr()), 'local')").Scan(&client).Error
		}
		answer(w, map[string]any{"email": email, "serverSawClient": client}, err)
	})
	return nil
}

// orderRoutes: publish-order-service's start (lib/pq, its pool, golang-migrate under its advisory lock), its outbox
// listener (pq.Listener, a connection of its own) marking events published, and an order written with its event.
func orderRoutes(mux *http.ServeMux, url, migrations string) error {
	db, err := openPq(url)
	if err != nil {
		return err
	}
	if err := runMigrations(db, migrations); err != nil {
		return err
	}
	listener := newOutboxListener(url, nil)
	if err := listener.Listen("outbox_new"); err != nil {
		return fmt.Errorf("LISTEN: %w", err)
	}
	go publishOutbox(db, listener)
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, _ *http.Request) {
		id := randomID()
		err := orderWithEvent(db, id)
		var status, client string
		if err == nil {
			err = db.QueryRow(`SELECT status, coalesce(host(inet_client_addr()), 'local') FROM orders WHERE id = $1`, id).Scan(&status, &client)
		}
		answer(w, map[string]any{"id": id, "status": status, "serverSawClient": client}, err)
	})
	mux.HandleFunc("GET /orders/{id}/published", func(w http.ResponseWriter, r *http.Request) {
		var published bool
		err := db.QueryRow(`SELECT published_at IS NOT NULL FROM outbox_events WHERE aggregate_id = $1`, r.PathValue("id")).Scan(&published)
		answer(w, map[string]any{"published": published}, err)
	})
	return nil
}

func runMigrations(db *sql.DB, dir string) error {
	m, err := newMigrator(db, dir)
	if err != nil {
		return err
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// orderWithEvent writes the order and its outbox event in one transaction, as the order handler does.
func orderWithEvent(db *sql.DB, id string) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO orders (id, items, total, status, user_id) VALUES ($1, $2, $3, 'CREATED', $4)`, id, `[{"sku":"a","qty":1}]`, 19.9, "u1"); err != nil {
		return err
	}
	if _, err := tx.Exec(`INSERT INTO outbox_events (id, aggregate_id, event_type, payload) VALUES ($1, $2, 'order.created', '{}')`, uuid(), id); err != nil {
		return err
	}
	return tx.Commit()
}

// publishOutbox marks each notified event published; the listener's reconnects deliver a nil notification.
func publishOutbox(db *sql.DB, listener *pq.Listener) {
	for note := range listener.Notify {
		if note == nil {
			continue
		}
		if _, err := db.Exec(`UPDATE outbox_events SET published_at = now() WHERE id = $1`, note.Extra); err != nil {
			log.Printf("outbox: %v", err)
		}
	}
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
