package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestRunSmall runs every scenario with tiny numbers, against a relay
// process and in process, so the tool cannot rot. It asserts no timing,
// only that every run completes (every answer 200, the stream holding
// exactly one message per event, which measure checks) and that the
// report adds up.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay")
	}
	for _, inProcess := range []bool{false, true} {
		cfg := config{InProcess: inProcess, Runs: 1, Scale: 0.01, Seed: 7, Replicas: 1}
		rep, err := runAll(context.Background(), cfg, zerolog.New(zerolog.NewTestWriter(t)))
		if err != nil {
			t.Fatalf("in process %v: %v", inProcess, err)
		}
		if len(rep.Scenarios) != len(defaultScenarios()) {
			t.Fatalf("%d scenarios reported, want %d", len(rep.Scenarios), len(defaultScenarios()))
		}
		for _, s := range rep.Scenarios {
			if s.Median.Relay == nil || s.Median.Relay.Events != s.Packages*s.Events {
				t.Errorf("%s: relay result %+v, want %d events", s.Name, s.Median.Relay, s.Packages*s.Events)
			}
			if s.Floors && (s.Median.Floor == nil || s.Median.FloorVerify == nil || s.Ratios.P50 == 0) {
				t.Errorf("%s: floors or ratios missing: %+v", s.Name, s.Ratios)
			}
			if s.Flood > 0 && (s.Median.Calm == nil || s.Ratios.FloodP50 == 0) {
				t.Errorf("%s: calm run or flood ratio missing: %+v", s.Name, s.Ratios)
			}
			if !inProcess && (s.AllocsPerEvent <= 0 || s.PeakRSS == 0) {
				t.Errorf("%s: relay process usage missing: %v allocs/event, peak RSS %d", s.Name, s.AllocsPerEvent, s.PeakRSS)
			}
			if wantShare := !inProcess && s.Floors; wantShare != (s.Ratios.CPUShare > 0) {
				t.Errorf("%s: CPU share %v (in process %v, floors %v)", s.Name, s.Ratios.CPUShare, inProcess, s.Floors)
			}
		}
		if rep.Verify <= 0 {
			t.Errorf("verify cost = %s, want > 0", rep.Verify)
		}
		var out bytes.Buffer
		writeReport(&out, rep)
		for _, want := range []string{"floor + verify", "relay ÷ floor", "targets:", "32 concurrent 1 MiB packages", "during the flood of 200 connections"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	}
}
