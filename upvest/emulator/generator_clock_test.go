package emulator

import (
	"testing"
	"time"
)

// TestGeneratorFollowsClock drives the generator's clock by hand: created_at
// is the clock (to the µs), or 1 µs after the previous event's when the
// clock has not moved past it, never earlier, never far ahead.
func TestGeneratorFollowsClock(t *testing.T) {
	start := time.Date(2025, 6, 2, 12, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name string
		n    int
		// advance is how far the clock moves before event i.
		advance func(i int) time.Duration
		// maxAhead bounds created_at minus the clock (to the µs).
		maxAhead time.Duration
		// stillAhead: the clock never catches up with the last event.
		stillAhead bool
	}{
		{
			// relay demo's rate for an hour: the old generator (10 ms to
			// 2 s per event) ended about 9 hours in the future.
			name: "ten events a second for an hour", n: 36000,
			advance: func(int) time.Duration { return 100 * time.Millisecond }, maxAhead: 0,
		},
		{
			name: "a thousand events a second, odd nanoseconds", n: 5000,
			advance: func(int) time.Duration { return time.Millisecond + 7*time.Nanosecond }, maxAhead: 0,
		},
		{
			name: "burst with the clock standing still", n: 1000,
			advance: func(int) time.Duration { return 0 }, maxAhead: 999 * time.Microsecond, stillAhead: true,
		},
		{
			name: "burst, then the clock catches up", n: 2000,
			advance: func(i int) time.Duration {
				if i < 1000 {
					return 0
				}
				return 10 * time.Microsecond
			},
			maxAhead: 999 * time.Microsecond,
		},
		{
			name: "clock steps back a second", n: 300,
			advance: func(i int) time.Duration {
				if i == 50 {
					return -time.Second
				}
				return 5 * time.Millisecond
			},
			maxAhead: time.Second + time.Microsecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := start
			g := NewGenerator(1)
			g.clock = func() time.Time { return now }
			var prev time.Time
			for i := range tt.n {
				now = now.Add(tt.advance(i))
				wall := now.Truncate(time.Microsecond)
				got := g.Event().CreatedAt
				if i > 0 && !got.After(prev) {
					t.Fatalf("event %d: created_at %s, not after the previous %s", i, got, prev)
				}
				if got.Before(wall) {
					t.Fatalf("event %d: created_at %s, behind the clock %s", i, got, wall)
				}
				if ahead := got.Sub(wall); ahead > tt.maxAhead {
					t.Fatalf("event %d: created_at %s is %s ahead of the clock, want at most %s", i, got, ahead, tt.maxAhead)
				}
				prev = got
			}
			if final := now.Truncate(time.Microsecond); !tt.stillAhead && !prev.Equal(final) {
				t.Errorf("last created_at %s, want the clock %s (caught up)", prev, final)
			}
		})
	}
}

// TestGenerateFromIgnoresClock: with GenerateFrom the steps are the
// synthetic 10 ms to 2 s, whatever the clock does.
func TestGenerateFromIgnoresClock(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC)
	g := NewGenerator(42, GenerateFrom(t0))
	g.clock = func() time.Time { t.Fatal("GenerateFrom generator read the clock"); return time.Time{} }
	evs := g.Batch(300)
	if got := evs[0].CreatedAt; !got.Equal(t0) {
		t.Errorf("first created_at %s, want %s", got, t0)
	}
	for i := 1; i < len(evs); i++ {
		if d := evs[i].CreatedAt.Sub(evs[i-1].CreatedAt); d < 10*time.Millisecond || d >= 2*time.Second {
			t.Fatalf("event %d is %s after the previous one, want 10ms..2s", i, d)
		}
	}
}
