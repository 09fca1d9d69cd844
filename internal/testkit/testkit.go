// Package testkit holds what every package's tests share: a poll with a
// deadline, for anything that happens in its own time; a log buffer that
// concurrent writers (loggers, NATS callbacks) may share; and a
// certificate authority for TLS tests.
package testkit

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// Eventually polls cond every 10 ms until it holds, or fails the test with
// msg once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// LogBuffer is a bytes.Buffer safe for concurrent use, e.g. as a zerolog
// writer.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
