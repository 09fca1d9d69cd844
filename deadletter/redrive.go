package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/relay"
)

// Selection chooses the dead letters to redrive: those stored between
// Since and Until (zero: unbounded); with Seqs, only those sequences (each
// must be a dead letter inside the window).
type Selection struct {
	Since, Until time.Time
	Seqs         []uint64
}

// RedriveOption tunes Redrive.
type RedriveOption func(*redriveConfig)

type redriveConfig struct {
	dryRun bool
}

// DryRun makes Redrive publish nothing: its Report says what it would
// store, what is already stored and what still fails.
func DryRun() RedriveOption { return func(c *redriveConfig) { c.dryRun = true } }

// Result is what Redrive did with one dead letter.
type Result struct {
	Letter Letter // without Data
	// Events is how many events in it parse today.
	Events int
	// Stored is how many of them this redrive stored (with DryRun: would
	// store); Duplicates how many were in the stream already.
	Stored, Duplicates int
	// Err says why the dead letter, or some of its elements, still fails
	// (wrapping the relay's reason, e.g. relay.ErrEventMissingType); nil
	// when every event in it is now in the stream. The dead letter stays
	// in the stream either way.
	Err error
}

// Report sums up a Redrive.
type Report struct {
	Results []Result
	// Stored, Duplicates: events, over every result. StillFailing: dead
	// letters with an Err (wholly or partly failing).
	Stored, Duplicates, StillFailing int
	DryRun                           bool
}

// Redrive runs the dead letters sel selects through the relay's current
// splitter (relay.Redrive) and publishes the events that now parse, in
// stream order and, within a dead letter, in payload order, with the
// headers live events get. See the package documentation for its
// idempotency and for why nothing is deleted. A dead letter that still
// fails is a result, not an error: the error is for what stops the redrive
// (NATS, a sequence that is not a dead letter), and the report then holds
// what was done before it.
func (s *Store) Redrive(ctx context.Context, sel Selection, opts ...RedriveOption) (Report, error) {
	var cfg redriveConfig
	for _, o := range opts {
		o(&cfg)
	}
	r := &redriver{s: s, dryRun: cfg.dryRun, report: Report{DryRun: cfg.dryRun}, done: map[string]bool{}}
	err := s.selected(ctx, sel, r.add)
	if err == nil {
		err = r.flush(ctx)
	}
	return r.report, err
}

// selected calls fn with each dead letter sel selects, data included, in
// stream order. It reads the window's headers first and then each dead
// letter by its sequence, so that no consumer idles while fn publishes.
func (s *Store) selected(ctx context.Context, sel Selection, fn func(context.Context, Letter) error) error {
	seqs := slices.Clone(sel.Seqs)
	if len(seqs) == 0 {
		err := s.List(ctx, sel.Since, sel.Until, func(l Letter) error {
			seqs = append(seqs, l.Seq)
			return nil
		})
		if err != nil {
			return err
		}
	}
	slices.Sort(seqs)
	for _, seq := range slices.Compact(seqs) {
		l, err := s.Get(ctx, seq)
		if err != nil {
			return err
		}
		if (!sel.Since.IsZero() && l.Time.Before(sel.Since)) || (!sel.Until.IsZero() && l.Time.After(sel.Until)) {
			return fmt.Errorf("%w: %d was stored at %s", ErrOutsideWindow, seq, l.Time.UTC().Format(time.RFC3339Nano))
		}
		if err := fn(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// redriver accumulates the events of selected dead letters and, a batch at
// a time, finds which are stored already and publishes the rest.
type redriver struct {
	s      *Store
	dryRun bool
	report Report

	// The batch: results not yet final, their messages, and its size.
	pending []pendingLetter
	bytes   int
	// done holds the event ids stored or found stored in this redrive.
	done map[string]bool
}

type pendingLetter struct {
	result Result
	msgs   []*nats.Msg
}

// batchBytes bounds the data a redrive holds in memory at once.
const batchBytes = 32 << 20

func (r *redriver) add(ctx context.Context, l Letter) error {
	msgs, err := relay.Redrive(r.s.prefix, sourceBase(l.Header, r.s.sourceBase), l.Data, l.Index)
	n := len(l.Data)
	l.Data = nil
	// Every dead letter joins the batch, so that the results keep stream
	// order; only those with events to publish hold memory.
	r.pending = append(r.pending, pendingLetter{result: Result{Letter: l, Events: len(msgs), Err: err}, msgs: msgs})
	if len(msgs) > 0 {
		r.bytes += n
	}
	if r.bytes >= batchBytes {
		return r.flush(ctx)
	}
	return nil
}

func (r *redriver) finish(res Result) {
	r.report.Results = append(r.report.Results, res)
	r.report.Stored += res.Stored
	r.report.Duplicates += res.Duplicates
	if res.Err != nil {
		r.report.StillFailing++
	}
}

// flush publishes the batch's events that are not in the stream yet, in
// order, and finishes its results.
func (r *redriver) flush(ctx context.Context) error {
	if len(r.pending) == 0 {
		return nil
	}
	if err := r.findStored(ctx); err != nil {
		return err
	}
	for i := range r.pending {
		p := &r.pending[i]
		for _, m := range p.msgs {
			id := m.Header.Get(relay.HeaderID)
			if r.done[id] {
				p.result.Duplicates++
				continue
			}
			if !r.dryRun {
				dup, err := r.publish(ctx, m)
				if err != nil {
					r.finish(p.result) // what it stored before the error
					r.pending = nil
					return fmt.Errorf("deadletter: redrive %d: %w", p.result.Letter.Seq, err)
				}
				if dup {
					p.result.Duplicates++
					r.done[id] = true
					continue
				}
			}
			p.result.Stored++
			r.done[id] = true
		}
		r.finish(p.result)
	}
	clear(r.pending) // let the batch's data go
	r.pending, r.bytes = r.pending[:0], 0
	return nil
}

// findStored marks, in done, the batch's events that are in the stream on
// their subject since the batch's oldest dead letter arrived.
func (r *redriver) findStored(ctx context.Context) error {
	want := map[string]bool{}
	var (
		subjects []string
		since    time.Time
	)
	for _, p := range r.pending {
		if len(p.msgs) == 0 {
			continue
		}
		if since.IsZero() || p.result.Letter.Time.Before(since) {
			since = p.result.Letter.Time
		}
		for _, m := range p.msgs {
			want[m.Header.Get(relay.HeaderID)] = true
			if !slices.Contains(subjects, m.Subject) {
				subjects = append(subjects, m.Subject)
			}
		}
	}
	if len(subjects) == 0 {
		return nil
	}
	w := broker.Window{Subjects: subjects, Since: since, HeadersOnly: true}
	err := broker.Walk(ctx, r.s.js, r.s.stream, w, func(m jetstream.Msg) error {
		if id := m.Headers().Get(relay.HeaderID); want[id] {
			r.done[id] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("deadletter: look for stored events: %w", err)
	}
	return nil
}

// publish stores m and reports whether JetStream found it a duplicate. It
// asks again while a clustered stream reports the same id as being stored
// right now (the answer is then the duplicate).
func (r *redriver) publish(ctx context.Context, m *nats.Msg) (duplicate bool, err error) {
	for attempt := 0; ; attempt++ {
		ack, err := r.s.js.PublishMsg(ctx, m)
		if err == nil {
			return ack.Duplicate, nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsErrDuplicateInProcess || attempt >= 50 {
			return false, fmt.Errorf("publish to %s: %w", m.Subject, err)
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		}
	}
}

// jsErrDuplicateInProcess is JetStream's "duplicate message id is in
// process".
const jsErrDuplicateInProcess jetstream.ErrorCode = 10158
