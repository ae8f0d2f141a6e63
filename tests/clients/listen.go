package main

import (
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// newOutboxListener is publish-order-service's: a connection of its own, reconnecting with a 1 s to 30 s backoff;
// onEvent (may be nil) sees its connection's events.
func newOutboxListener(url string, onEvent pq.EventCallbackType) *pq.Listener {
	return pq.NewListener(url, time.Second, 30*time.Second, onEvent)
}

// outboxListener runs the outbox listener (LISTEN outbox_new) until the returned stop is called, which answers how
// many times its connection was lost meanwhile.
func outboxListener(url string) (stop func() int) {
	var drops atomic.Int32
	listener := newOutboxListener(url, func(event pq.ListenerEventType, _ error) {
		if event == pq.ListenerEventDisconnected {
			drops.Add(1)
		}
	})
	_ = listener.Listen("outbox_new")
	// Its notifications are read and dropped, so that the channel never fills.
	go func() {
		for range listener.Notify {
		}
	}()
	return func() int {
		listener.Close()
		return int(drops.Load())
	}
}

// listen is publish-order-service's outbox listener: pq.NewListener (a connection of its own, reconnecting with
// a 1 s to 30 s backoff) on the channel outbox_new, while n notifications are sent through the service's pool.
func listen(url string, n int) Result {
	listener := newOutboxListener(url, nil)
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
