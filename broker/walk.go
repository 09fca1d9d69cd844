package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Window selects the messages Walk reads: those on one of Subjects (every
// subject of the stream when empty) stored at or after Since (from the
// oldest retained message when zero) and at or before Until (up to the
// newest message present when Walk starts, when zero). Times are the
// stream's storage times.
type Window struct {
	Subjects     []string
	Since, Until time.Time
	// HeadersOnly fetches headers without data (the data's size is in the
	// Nats-Msg-Size header): for walks that only look at headers.
	HeadersOnly bool
}

// StreamLookup is the part of jetstream.JetStream Walk uses.
type StreamLookup interface {
	Stream(ctx context.Context, name string) (jetstream.Stream, error)
}

// Walk calls fn for each message of stream in w, in stream order, and
// stops at the first error fn returns, returning it, or when ctx ends,
// returning ctx's error. It reads with an
// ordered, ephemeral consumer: it never modifies the stream and leaves no
// consumer behind (it deletes its consumer when done; should the process
// die first, the server removes it after a few seconds of inactivity).
// Messages stored after Walk starts are not read. An empty window, or a
// window whose messages the stream's limits remove while Walk reads, ends
// the walk without an error.
func Walk(ctx context.Context, js StreamLookup, stream string, w Window, fn func(jetstream.Msg) error) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("broker: stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("broker: stream %s: %w", stream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	cc := jetstream.OrderedConsumerConfig{
		FilterSubjects:    w.Subjects,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		HeadersOnly:       w.HeadersOnly,
		InactiveThreshold: walkInactive,
	}
	if !w.Since.IsZero() {
		since := w.Since
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	c, err := s.OrderedConsumer(ctx, cc)
	if err != nil {
		return fmt.Errorf("broker: walk %s: consumer: %w", stream, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.DeleteConsumer(dctx, c.CachedInfo().Name)
	}()
	ci, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("broker: walk %s: consumer: %w", stream, err)
	}
	if ci.NumPending == 0 {
		return nil
	}
	noResponders := 0
	for {
		batch, err := c.Fetch(walkBatch, jetstream.FetchMaxWait(walkWait))
		if errors.Is(err, nats.ErrNoResponders) && noResponders < 10 {
			// A replicated stream's fresh consumer may not be placed yet.
			noResponders++
			if err := pause(ctx, 100*time.Millisecond); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("broker: walk %s: fetch: %w", stream, err)
		}
		got := 0
		for m := range batch.Messages() {
			if err := ctx.Err(); err != nil {
				return err
			}
			got++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("broker: walk %s: %w", stream, err)
			}
			if !w.Until.IsZero() && md.Timestamp.After(w.Until) {
				return nil
			}
			if err := fn(m); err != nil {
				return err
			}
			if md.Sequence.Stream >= last || md.NumPending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("broker: walk %s: fetch: %w", stream, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if got == 0 {
			// Nothing more arrived within the wait: the rest of the window
			// was removed (age limit) while we read.
			return nil
		}
	}
}

// Walk's consumer settings: messages per fetch, the wait for a fetch to
// fill, and how long an abandoned consumer lives on the server.
const (
	walkBatch    = 256
	walkWait     = 2 * time.Second
	walkInactive = 10 * time.Second
)

// pause waits d, or returns ctx's error if ctx ends first.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
