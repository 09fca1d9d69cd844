package relay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// endsAfter is a context whose Err reports it cancelled from the
// calls-th call on: a request that ends while its batch is under way,
// at a point the test chooses.
type endsAfter struct {
	context.Context
	calls atomic.Int32
	done  chan struct{}
}

func newEndsAfter(calls int32) *endsAfter {
	c := &endsAfter{Context: context.Background(), done: make(chan struct{})}
	c.calls.Store(calls)
	return c
}

func (c *endsAfter) Err() error {
	if c.calls.Add(-1) > 0 {
		return nil
	}
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	return context.Canceled
}

func (c *endsAfter) Done() <-chan struct{} { return c.done }

// TestAbandonedBatchLeavesNoSubscription: a request whose context ends
// while its package's batch is being sent gives the batch up without
// leaving the batch's acknowledgement subscription behind (jetstreamext
// keeps it until the connection closes unless the batch is ended), and
// what it stored is a prefix of the package.
func TestAbandonedBatchLeavesNoSubscription(t *testing.T) {
	t.Parallel()
	f := newStoreFixture(t)
	h, nc := f.h, f.nc
	base := nc.NumSubscriptions()
	for _, c := range []struct {
		name  string
		calls int32 // Err calls that still report the context alive
	}{
		{"ended before the batch", 1},
		{"ended after the first message", 2},
		{"ended after ten messages", 11},
	} {
		p := benchMessages(h, 50)
		var out outcome
		k, err := h.publishBatch(newEndsAfter(c.calls), p, 0, &out)
		if !errors.Is(err, context.Canceled) || k != 0 {
			t.Fatalf("%s: publishBatch = %d, %v; want 0, context.Canceled", c.name, k, err)
		}
		if n := nc.NumSubscriptions(); n != base {
			t.Errorf("%s: %d subscriptions on the connection, want %d", c.name, n, base)
		}
	}
	// Every batch was ended, so what each stored is a prefix (the first
	// ten messages at most, by the last case), each id once.
	if n := len(f.stored(t)); n > 10 {
		t.Errorf("stream holds %d messages, want at most the 10 sent", n)
	}
}
