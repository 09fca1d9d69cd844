package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestRunSmall runs every phase with tiny numbers so the tool cannot rot.
// It asserts no timing, only that each run completes (every answer 200, the
// stream holding exactly one message per event, which run checks) and that
// the report adds up.
func TestRunSmall(t *testing.T) {
	cfg := config{Packages: 6, EventsPerPackage: 3, Concurrency: 2, Warmup: 2, Seed: 7, Diagnostic: true}
	rep, err := run(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	for _, r := range []*result{rep.Raw, rep.Relay, rep.NoVerify} {
		if r == nil {
			t.Fatal("a run is missing from the report")
		}
		if got, want := r.Events, cfg.Packages*cfg.EventsPerPackage; got != want {
			t.Errorf("%s: %d events timed, want %d", r.Name, got, want)
		}
		if got := len(r.Latency); got != cfg.Packages {
			t.Errorf("%s: %d latencies, want %d", r.Name, got, cfg.Packages)
		}
	}
	if rep.Verify <= 0 {
		t.Errorf("verify cost = %s, want > 0", rep.Verify)
	}
	var out bytes.Buffer
	writeReport(&out, rep)
	for _, want := range []string{"raw JetStream (floor)", "relay ÷ floor: throughput", "signature verification"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
