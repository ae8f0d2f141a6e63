// velure-clients runs velure's own database drivers against a URL, the way velure's services use them
// (database/sql pools with the services' limits), and prints one JSON result line. The integration tests
// (tests/integration/drivers.test.ts) start it against PostgreSQL directly and through the program's PgBouncer.
//
//	velure-clients gorm    -url U [-workers 20 -ops 200]   auth-service: GORM + pgx, AutoMigrate, then users
//	velure-clients pq      -url U [-workers 15 -ops 200]   publish-order-service: lib/pq inserts and reads
//	velure-clients migrate -url U -dir D                   publish-order-service's golang-migrate at start
//	velure-clients listen  -url U [-n 5]                   the outbox listener: pq.Listener and pg_notify
//	velure-clients session -url U                          a session SET seen by the next statement
//	velure-clients serve   -service auth|orders [-dir D]   a service's stand-in over HTTP (APP_PORT, POSTGRES_URL
//	                                                       from the environment), for the real node's images
//	velure-clients peak    -service auth|orders -urls U1,U2,… -duration D
//	                                                       a service at its peak: one pool per pod (URL), every
//	                                                       worker of every pool reading (npm run bench)
//
// gorm and pq with -duration run until that time has passed or stdin closes, for the fault tests.
package main

import (
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Result is the one JSON line a command prints.
type Result struct {
	Ops     int            `json:"ops"`
	Failed  int            `json:"failed"`
	Errors  map[string]int `json:"errors,omitempty"`
	Acked   []string       `json:"acked,omitempty"`
	Version uint           `json:"version,omitempty"`
	Dirty   bool           `json:"dirty,omitempty"`
	Seconds float64        `json:"seconds"`
	Got     int            `json:"got,omitempty"`
	Value   string         `json:"value,omitempty"`
	Fatal   string         `json:"fatal,omitempty"`
	// OkAfterLastError counts the operations that succeeded after the last failure: a driver that recovered from a
	// fault on its own has some.
	OkAfterLastError int `json:"okAfterLastError"`
	// FirstFailure and LastFailure are when the first and the last failed operation ended (Unix time in seconds, to
	// the millisecond): the error window an operation cost, which the day-two operations test reports.
	FirstFailure float64 `json:"firstFailure,omitempty"`
	LastFailure  float64 `json:"lastFailure,omitempty"`
	// ListenerDrops counts the times the outbox listener's connection was lost (pq.Listener reconnects by itself;
	// notifications sent meanwhile are not delivered), with -listen.
	ListenerDrops int `json:"listenerDrops,omitempty"`
}

// tally counts operations and errors from many goroutines; an error's text is cut where it starts naming an object,
// so that "prepared statement \"stmtcache_1\" already exists" and "_2" count as one kind.
type tally struct {
	mu     sync.Mutex
	result Result
}

func (t *tally) done(err error, acked string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.result.Ops++
	// A write the server committed counts as acknowledged even when a later step of the operation failed.
	if acked != "" {
		t.result.Acked = append(t.result.Acked, acked)
	}
	if err == nil {
		t.result.OkAfterLastError++
	} else {
		t.result.OkAfterLastError = 0
		t.result.Failed++
		now := float64(time.Now().UnixMilli()) / 1000
		if t.result.FirstFailure == 0 {
			t.result.FirstFailure = now
		}
		t.result.LastFailure = now
		if t.result.Errors == nil {
			t.result.Errors = map[string]int{}
		}
		t.result.Errors[errorKind(err)]++
	}
}

// peerAddress matches an address with its port in an error's text ("read tcp 127.0.0.1:41234->127.0.0.1:5432"): the
// ports differ per connection, the kind does not.
var peerAddress = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+):\d+`)

func errorKind(err error) string {
	text := peerAddress.ReplaceAllString(err.Error(), "$1:…")
	if i := strings.Index(text, "stmtcache_"); i >= 0 {
		text = text[:i] + "stmtcache_…"
	}
	if len(text) > 160 {
		text = text[:160]
	}
	return text
}

// Pool is a database/sql pool's limits: velure's services set all four.
type Pool struct {
	MaxOpen, MaxIdle         int
	MaxLifetime, MaxIdleTime time.Duration
}

// apply sets the limits on a database/sql pool, as the services do right after opening it.
func (p Pool) apply(db *sql.DB) {
	db.SetMaxOpenConns(p.MaxOpen)
	db.SetMaxIdleConns(p.MaxIdle)
	db.SetConnMaxLifetime(p.MaxLifetime)
	db.SetConnMaxIdleTime(p.MaxIdleTime)
}

// Load is a concurrent run: workers × ops, or workers until the deadline or stdin's end.
type Load struct {
	Workers, Ops int
	Duration     time.Duration
}

// run calls op(worker, i) from Workers goroutines; op returns the id whose write was acknowledged (or "") and an error.
func (l Load) run(t *tally, op func(worker, i int) (string, error)) {
	stop := make(chan struct{})
	if l.Duration > 0 {
		go stopOn(stop, l.Duration)
	}
	var wg sync.WaitGroup
	for w := 0; w < l.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; l.Duration > 0 || i < l.Ops; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := op(w, i)
				t.done(err, id)
				if l.Duration > 0 {
					// A steady rate, so that a fault lands among a few in-flight operations, not thousands.
					time.Sleep(20 * time.Millisecond)
				}
			}
		}(w)
	}
	wg.Wait()
}

// stopOn closes stop after d, or when stdin ends (the test's way to end a run at a moment of its choosing).
func stopOn(stop chan struct{}, d time.Duration) {
	ended := make(chan struct{})
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := os.Stdin.Read(buf); err != nil {
				close(ended)
				return
			}
		}
	}()
	select {
	case <-time.After(d):
	case <-ended:
	}
	close(stop)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: velure-clients gorm|pq|migrate|listen|session -url URL [flags], or peak -service S -urls U1,U2 [-listen N] -duration D")
		os.Exit(2)
	}
	command := os.Args[1]
	flags := flag.NewFlagSet(command, flag.ExitOnError)
	url := flags.String("url", "", "the service's POSTGRES_URL")
	workers := flags.Int("workers", 0, "concurrent goroutines (default: the pool's MaxOpen)")
	ops := flags.Int("ops", 200, "operations per goroutine")
	duration := flags.Duration("duration", 0, "run until this much time has passed or stdin closes, instead of -ops")
	dir := flags.String("dir", "", "migrate: the migrations directory")
	n := flags.Int("n", 5, "listen: notifications to send")
	run := flags.String("run", "", "a prefix for the ids this run writes (unique per process)")
	service := flags.String("service", "", "peak: auth (GORM + pgx) or orders (lib/pq)")
	urls := flags.String("urls", "", "peak: one URL per pod, separated by commas")
	listenPerPod := flags.Int("listen", 0, "peak: outbox listeners (pq.Listener) each pod holds beside its pool; pq: 1 runs the outbox listener beside the load")
	maxLifetime := flags.Duration("max-lifetime", 0, "gorm, pq: the pool's SetConnMaxLifetime instead of the service's (the day-two operations test shortens it)")
	_ = flags.Parse(os.Args[2:])
	if *maxLifetime > 0 {
		AuthPool.MaxLifetime, OrderPool.MaxLifetime = *maxLifetime, *maxLifetime
	}
	if command == "serve" {
		if err := serve(*service, *dir); err != nil {
			fmt.Fprintln(os.Stderr, "serve:", err)
			os.Exit(1)
		}
		return
	}
	if command == "peak" {
		_ = json.NewEncoder(os.Stdout).Encode(peakLoad(*service, strings.Split(*urls, ","), *listenPerPod, *duration))
		return
	}
	if *url == "" {
		fmt.Fprintln(os.Stderr, "-url is required")
		os.Exit(2)
	}
	started := time.Now()
	var result Result
	load := func(pool Pool) Load {
		w := *workers
		if w == 0 {
			w = pool.MaxOpen
		}
		return Load{Workers: w, Ops: *ops, Duration: *duration}
	}
	switch command {
	case "gorm":
		result = gormLoad(*url, load(AuthPool), *run)
	case "pq":
		result = pqLoad(*url, load(OrderPool), *run, *listenPerPod > 0)
	case "migrate":
		result = migrateUp(*url, *dir)
	case "listen":
		result = listen(*url, *n)
	case "session":
		result = sessionSet(*url)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", command)
		os.Exit(2)
	}
	result.Seconds = time.Since(started).Seconds()
	sort.Strings(result.Acked)
	_ = json.NewEncoder(os.Stdout).Encode(result)
}
