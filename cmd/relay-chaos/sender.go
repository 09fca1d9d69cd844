package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

// pkg is one package a sender offered and what became of it.
type pkg struct {
	phase    int
	ids      []string
	first    time.Time // first attempt
	done     time.Time // the 200; zero if never answered 200
	attempts int
}

// ledger records every package of the campaign; phase is the fault phase
// packages are counted in.
type ledger struct {
	phase atomic.Int32

	mu   sync.Mutex
	pkgs []*pkg
}

func (l *ledger) add(p *pkg) {
	l.mu.Lock()
	l.pkgs = append(l.pkgs, p)
	l.mu.Unlock()
}

func (l *ledger) snapshot() []pkg {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]pkg, len(l.pkgs))
	for i, p := range l.pkgs {
		out[i] = *p
	}
	return out
}

// deliverer sends packages as Upvest does: signed on every attempt, the
// same package again until it is answered 200, each attempt to the next
// relay in turn (a load balancer in front of the replicas).
type deliverer struct {
	sign    func(*http.Request, []byte) error
	targets []string
	next    atomic.Uint64
	client  *http.Client
	ledger  *ledger
}

// deliver sends body until 200 or until ctx ends, recording the package.
// started, if not nil, is called once the first attempt's request is
// being written (used to kill a relay mid-package).
func (d *deliverer) deliver(ctx context.Context, ids []string, body []byte, started func()) {
	p := &pkg{phase: int(d.ledger.phase.Load()), ids: ids, first: time.Now()}
	d.ledger.add(p)
	wait := 50 * time.Millisecond
	for ctx.Err() == nil {
		p.attempts++
		target := d.targets[d.next.Add(1)%uint64(len(d.targets))]
		ok := d.attempt(ctx, target, body, started)
		started = nil
		if ok {
			d.ledger.mu.Lock()
			p.done = time.Now()
			d.ledger.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func (d *deliverer) attempt(ctx context.Context, target string, body []byte, started func()) bool {
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "relay-chaos")
	if err := d.sign(req, body); err != nil {
		return false
	}
	if started != nil {
		go func() { time.Sleep(2 * time.Millisecond); started() }()
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// wireEvent is one element of a package's payload, in Upvest's field order.
type wireEvent struct {
	ID        string `json:"id"`
	CreatedAt string `json:"created_at"`
	Type      string `json:"type"`
	Object    any    `json:"object"`
	WebhookID string `json:"webhook_id"`
}

// makePackage builds a package of n realistic events for webhookID,
// created_at ascending as Upvest sorts them.
func makePackage(gen *emulator.Generator, webhookID string, n int) (ids []string, body []byte, err error) {
	evs := gen.Batch(n)
	payload := make([]wireEvent, len(evs))
	now := time.Now().UTC()
	for i, e := range evs {
		id := e.ID
		if id == "" {
			id = uuid.NewString()
		}
		payload[i] = wireEvent{
			ID:        id,
			CreatedAt: now.Add(time.Duration(i) * time.Microsecond).Format(time.RFC3339Nano),
			Type:      e.Type,
			Object:    e.Object,
			WebhookID: webhookID,
		}
		ids = append(ids, id)
	}
	body, err = json.Marshal(map[string]any{"payload": payload})
	if err != nil {
		return nil, nil, fmt.Errorf("package: %w", err)
	}
	return ids, body, nil
}

// sendLoop is one webhook's delivery queue: one package in flight, the next
// only after the previous one was answered 200. It offers no new package
// once produce ends, and gives up on the one in flight when deliver ends.
func sendLoop(produce, deliver context.Context, d *deliverer, gen *emulator.Generator, events int, pause time.Duration) {
	webhookID := uuid.NewString()
	for produce.Err() == nil {
		if pause > 0 && sleep(produce, pause) != nil {
			return
		}
		ids, body, err := makePackage(gen, webhookID, events)
		if err != nil {
			return
		}
		d.deliver(deliver, ids, body, nil)
	}
}
