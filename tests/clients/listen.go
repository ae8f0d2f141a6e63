package main

import (
	"time"

	"github.com/lib/pq"
)

// listen is publish-order-service's outbox listener: pq.NewListener (a connection of its own, reconnecting with
// a 1 s to 30 s backoff) on the channel outbox_new, while n notifications are sent through the service's pool.
func listen(url string, n int) Result {
	listener := pq.NewListener(url, time.Second, 30*time.Second, nil)
	defer listener.Close()
	if err := listener.Listen("outbox_new"); err != nil {
		return Result{Fatal: "LISTEN: " + err.Error()}
	}
	db, err := openPq(url)
	if err != nil {
		return Result{Fatal: err.Error()}
	}
	defer db.Close()
	var t tally
	for i := 0; i < n; i++ {
		_, err := db.Exec(`SELECT pg_notify('outbox_new', $1)`, "event")
		t.done(err, "")
	}
	result := t.result
	deadline := time.After(5 * time.Second)
	for result.Got < n {
		select {
		case note := <-listener.Notify:
			if note != nil {
				result.Got++
			}
		case <-deadline:
			return result
		}
	}
	return result
}
