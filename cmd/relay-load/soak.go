package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// soakReport is a long run of a scenario with the relay's resident memory
// sampled every second.
type soakReport struct {
	Scenario  string        `json:"scenario"`
	Duration  time.Duration `json:"duration_ns"`
	Packages  int64         `json:"packages"`
	Events    int64         `json:"events"`
	PeakRSS   uint64        `json:"peak_rss_bytes"`
	FirstRSS  uint64        `json:"first_minute_max_rss_bytes"`
	LastRSS   uint64        `json:"last_minute_max_rss_bytes"`
	SampleRSS []uint64      `json:"rss_bytes_per_second"`
}

// soakDuplicateWindow is the stream's duplicate window during the soak.
const soakDuplicateWindow = 10 * time.Second

// soak keeps sc.Webhooks packages in flight for d, each signed just before
// it is sent, every answer 200, purging the stream as it goes so the disk
// does not fill.
func (l *loader) soak(ctx context.Context, sc scenario, tmpl *template, d time.Duration) (*soakReport, error) {
	p, ok := l.target.(*process)
	if !ok {
		return nil, errors.New("the soak needs the relay as a process (not -inprocess)")
	}
	l.log.Info().Str("scenario", sc.Name).Dur("duration", d).Msg("soak")
	// The stream is purged every few seconds so the disk does not fill,
	// but a purge keeps the message ids of the duplicate window (two hours
	// by default): 30 million of them in ten minutes, gigabytes of heap in
	// the server, which runs in this process beside the senders, and its
	// collections stalled the server for seconds. Every id is new here, so
	// a short window loses nothing the soak measures.
	cfg := l.stream.CachedInfo().Config
	cfg.Duplicates = soakDuplicateWindow
	s, err := l.js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("shortening the duplicate window: %w", err)
	}
	l.stream = s
	rep := &soakReport{Scenario: sc.Name, Duration: d}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		packages atomic.Int64
		failed   error
		once     sync.Once
		wg       sync.WaitGroup
	)
	fail := func(err error) { once.Do(func() { failed = err; cancel() }) }
	for range sc.Webhooks {
		wg.Go(func() {
			for ctx.Err() == nil {
				pk := tmpl.instance(false)
				if err := sign(l.emu, pk); err != nil {
					fail(err)
					return
				}
				if err := l.target.post(context.WithoutCancel(ctx), pk); err != nil {
					fail(err)
					return
				}
				packages.Add(1)
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			rep.SampleRSS = append(rep.SampleRSS, p.rss())
			if i%5 == 4 {
				if err := l.stream.Purge(context.WithoutCancel(ctx)); err != nil {
					fail(err)
					return
				}
			}
		}
	})
	wg.Wait()
	if failed != nil {
		return nil, failed
	}
	u, _ := p.usage()
	rep.PeakRSS = u.PeakRSS
	rep.Packages = packages.Load()
	rep.Events = rep.Packages * int64(tmpl.events())
	n := len(rep.SampleRSS)
	for i, v := range rep.SampleRSS {
		if i < 60 {
			rep.FirstRSS = max(rep.FirstRSS, v)
		}
		if i >= n-60 {
			rep.LastRSS = max(rep.LastRSS, v)
		}
	}
	if err := l.stream.Purge(context.Background()); err != nil {
		return nil, err
	}
	return rep, nil
}

// rss is the process's resident memory now.
func (p *process) rss() uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
