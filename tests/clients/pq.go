package main

import (
	"database/sql"
	"fmt"
	"time"

	_ "github.com/lib/pq"
)

// OrderPool is publish-order-service's pool: 15 open, 5 idle, 5 min lifetime, 2 min idle.
var OrderPool = Pool{MaxOpen: 15, MaxIdle: 5, MaxLifetime: 5 * time.Minute, MaxIdleTime: 2 * time.Minute}

// openPq opens a database/sql pool on lib/pq with publish-order-service's limits.
func openPq(url string) (*sql.DB, error) {
	db, err := sql.Open("postgres", url)
	if err != nil {
		return nil, err
	}
	OrderPool.apply(db)
	return db, db.Ping()
}

// pqLoad: per operation an order is inserted with parameters (lib/pq's extended protocol: Parse, then Bind and
// Execute in another round trip), read back and its status updated, as the order handlers do; with listen, the
// outbox listener holds its connection beside the pool for the whole run.
func pqLoad(url string, load Load, run string, listen bool) Result {
	db, err := openPq(url)
	if err != nil {
		return Result{Fatal: err.Error()}
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS load_orders (id text PRIMARY KEY, items jsonb NOT NULL, total numeric(12,2) NOT NULL, status text NOT NULL)`); err != nil {
		return Result{Fatal: err.Error()}
	}
	var t tally
	stopListener := func() int { return 0 }
	if listen {
		stopListener = outboxListener(url)
	}
	load.run(&t, func(w, i int) (string, error) {
		id := fmt.Sprintf("%s-%d-%d", run, w, i)
		if _, err := db.Exec(`INSERT INTO load_orders (id, items, total, status) VALUES ($1, $2, $3, $4)`, id, `[{"sku":"a","qty":1}]`, 19.9, "CREATED"); err != nil {
			return "", err
		}
		var status string
		if err := db.QueryRow(`SELECT status FROM load_orders WHERE id = $1`, id).Scan(&status); err != nil {
			return id, err
		}
		_, err := db.Exec(`UPDATE load_orders SET status = $1 WHERE id = $2`, "PROCESSING", id)
		return id, err
	})
	t.result.ListenerDrops = stopListener()
	return t.result
}
