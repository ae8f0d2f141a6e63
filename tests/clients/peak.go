package main

import (
	"database/sql"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/lib/pq"
)

// peakRows is how many rows each service's reads pick from: seeded once, before the timed part.
const peakRows = 100

// PeakResult is what a service gives at its peak: its pods started (or not), every worker's reads, and the most
// connections the pods held at once.
type PeakResult struct {
	Pods        int            `json:"pods"`
	PodsStarted int            `json:"podsStarted"`
	Workers     int            `json:"workers"`
	Served      int            `json:"served"`
	Ops         int            `json:"ops"`
	Failed      int            `json:"failed"`
	Errors      map[string]int `json:"errors,omitempty"`
	TPS         float64        `json:"tps"`
	P50Ms       float64        `json:"p50Ms"`
	P99Ms       float64        `json:"p99Ms"`
	MaxMs       float64        `json:"maxMs"`
	Listeners   int            `json:"listeners,omitempty"`
	PeakOpen    int            `json:"peakOpen"`
	Fatal       string         `json:"fatal,omitempty"`
}

// peakPod is one simulated pod: its own pool with the service's limits, the read its handlers run most, and the
// LISTEN connections it holds beside its pool (publish-order's outbox listener).
type peakPod struct {
	db        *sql.DB
	read      func(key int) error
	pool      Pool
	listeners []*pq.Listener
}

func (p *peakPod) close() {
	for _, l := range p.listeners {
		l.Close()
	}
	p.db.Close()
}

// listenBeside opens n outbox listeners as publish-order's pod does (pq.NewListener, LISTEN outbox_new), each on a
// connection of its own that it holds for good.
func (p *peakPod) listenBeside(url string, n int) error {
	for i := 0; i < n; i++ {
		listener := newOutboxListener(url, nil)
		p.listeners = append(p.listeners, listener)
		if err := listener.Listen("outbox_new"); err != nil {
			return fmt.Errorf("LISTEN: %w", err)
		}
	}
	return nil
}

// openPeakPod starts a pod as the service does: auth-service opens GORM (pgx) and runs AutoMigrate, publish-order
// opens lib/pq and pings. A pod whose start fails is a pod the database did not admit.
func openPeakPod(service, url string) (*peakPod, error) {
	switch service {
	case "auth":
		db, err := openGorm(url)
		if err != nil {
			return nil, err
		}
		sqlDB, _ := db.DB()
		if err := db.AutoMigrate(&User{}, &Session{}); err != nil {
			sqlDB.Close()
			return nil, fmt.Errorf("AutoMigrate: %w", err)
		}
		read := func(key int) error {
			var user User
			return db.Where("email = ?", peakEmail(key)).First(&user).Error
		}
		return &peakPod{db: sqlDB, read: read, pool: AuthPool}, nil
	case "orders":
		db, err := openPq(url)
		if err != nil {
			if db != nil {
				db.Close()
			}
			return nil, err
		}
		read := func(key int) error {
			var status string
			return db.QueryRow(`SELECT status FROM load_orders WHERE id = $1`, peakOrderID(key)).Scan(&status)
		}
		return &peakPod{db: db, read: read, pool: OrderPool}, nil
	}
	return nil, fmt.Errorf("unknown service %q (auth or orders)", service)
}

func peakEmail(key int) string   { return fmt.Sprintf("peak-%d@velure.test", key) }
func peakOrderID(key int) string { return fmt.Sprintf("peak-%d", key) }

// seedPeak writes the rows the reads pick from, through the first pod (idempotent; AutoMigrate made auth's table).
func seedPeak(service string, pod *peakPod) error {
	if service == "orders" {
		if _, err := pod.db.Exec(`CREATE TABLE IF NOT EXISTS load_orders (id text PRIMARY KEY, items jsonb NOT NULL, total numeric(12,2) NOT NULL, status text NOT NULL)`); err != nil {
			return err
		}
	}
	for key := 0; key < peakRows; key++ {
		var err error
		if service == "auth" {
			_, err = pod.db.Exec(`INSERT INTO users (name, email, password, created_at, updated_at) VALUES ($1, $2, $3, now(), now()) ON CONFLICT (email) DO NOTHING`, "u", peakEmail(key), "x")
		} else {
			_, err = pod.db.Exec(`INSERT INTO load_orders (id, items, total, status) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`, peakOrderID(key), `[]`, 1, "CREATED")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// openListeningPod is openPeakPod with `listen` outbox listeners beside the pool, opened before any request.
func openListeningPod(service, url string, listen int) (*peakPod, error) {
	pod, err := openPeakPod(service, url)
	if err != nil {
		return nil, err
	}
	if err := pod.listenBeside(url, listen); err != nil {
		pod.close()
		return nil, err
	}
	return pod, nil
}

// peakLoad starts the first pod (its schema and the rows the reads pick from), then the other pods at once, as a
// scale-up does, each with `listen` outbox listeners, then runs pool.MaxOpen workers in every pod that started,
// each reading a row after another for d: every pod asks for its whole pool, the service's peak.
func peakLoad(service string, urls []string, listen int, d time.Duration) PeakResult {
	result := PeakResult{Pods: len(urls)}
	first, err := openListeningPod(service, urls[0], listen)
	if err == nil {
		err = seedPeak(service, first)
	}
	if err != nil {
		result.Fatal = "the first pod: " + err.Error()
		return result
	}
	pods := append([]*peakPod{first}, startPeakPods(service, urls[1:], listen, &result)...)
	result.PodsStarted = len(pods)
	result.Listeners = len(pods) * listen
	defer func() {
		for _, pod := range pods {
			pod.close()
		}
	}()
	var mu sync.Mutex
	var latencies []time.Duration
	var t tally
	stopSampling := sampleOpen(pods, &result.PeakOpen)
	deadline := time.Now().Add(d)
	started := time.Now()
	var wg sync.WaitGroup
	for _, pod := range pods {
		for w := 0; w < pod.pool.MaxOpen; w++ {
			result.Workers++
			wg.Add(1)
			go func(pod *peakPod, w int) {
				defer wg.Done()
				var mine []time.Duration
				for i := 0; time.Now().Before(deadline); i++ {
					begin := time.Now()
					err := pod.read((w*31 + i) % peakRows)
					if err == nil {
						mine = append(mine, time.Since(begin))
					}
					t.done(err, "")
				}
				mu.Lock()
				latencies = append(latencies, mine...)
				if len(mine) > 0 {
					result.Served++
				}
				mu.Unlock()
			}(pod, w)
		}
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	stopSampling()
	result.Ops, result.Failed, result.Errors = t.result.Ops, t.result.Failed, mergeErrors(result.Errors, t.result.Errors)
	result.TPS = float64(len(latencies)) / elapsed
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	result.P50Ms, result.P99Ms, result.MaxMs = percentileMs(latencies, 50), percentileMs(latencies, 99), percentileMs(latencies, 100)
	return result
}

// startPeakPods opens the pods at once; a pod that fails to start is counted with its error, as a crash-looping pod.
func startPeakPods(service string, urls []string, listen int, result *PeakResult) []*peakPod {
	pods := make([]*peakPod, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, url := range urls {
		wg.Add(1)
		go func(i int, url string) {
			defer wg.Done()
			pods[i], errs[i] = openListeningPod(service, url, listen)
		}(i, url)
	}
	wg.Wait()
	var started []*peakPod
	for i, pod := range pods {
		if errs[i] != nil {
			result.Errors = mergeErrors(result.Errors, map[string]int{"pod start: " + errorKind(errs[i]): 1})
			continue
		}
		started = append(started, pod)
	}
	return started
}

// sampleOpen records, every 10 ms, the connections all pods hold together; the returned function stops it.
func sampleOpen(pods []*peakPod, peak *int) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			open := 0
			for _, pod := range pods {
				open += pod.db.Stats().OpenConnections
			}
			if open > *peak {
				*peak = open
			}
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

func mergeErrors(into, from map[string]int) map[string]int {
	if len(from) == 0 {
		return into
	}
	if into == nil {
		into = map[string]int{}
	}
	for kind, n := range from {
		into[kind] += n
	}
	return into
}

// percentileMs is the p-th percentile of sorted latencies (100: the slowest), in milliseconds (0 when there are none).
func percentileMs(latencies []time.Duration, p int) float64 {
	if len(latencies) == 0 {
		return 0
	}
	i := len(latencies) * p / 100
	if i >= len(latencies) {
		i = len(latencies) - 1
	}
	return float64(latencies[i].Microseconds()) / 1000
}
