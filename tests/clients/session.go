package main

import "context"

// sessionSet runs a session-level SET on one connection of a one-connection pool, then reads the setting back in
// the next statement, as code that sets search_path or a timeout at connect time expects to see it.
func sessionSet(url string) Result {
	db, err := openPq(url)
	if err != nil {
		return Result{Fatal: err.Error()}
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		return Result{Fatal: err.Error()}
	}
	defer conn.Close()
	var t tally
	_, err = conn.ExecContext(context.Background(), `SET statement_timeout = '4321ms'`)
	t.done(err, "")
	var value string
	err = conn.QueryRowContext(context.Background(), `SHOW statement_timeout`).Scan(&value)
	t.done(err, "")
	t.result.Value = value
	return t.result
}
