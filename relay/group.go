package relay

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// Group commit.
//
// Each fast-ingest batch costs the relay and the JetStream server a fixed
// amount besides its messages: an acknowledgement subscription, a round
// trip for its first message and one for its commit, the server's batch
// bookkeeping. For a small package that is most of what storing it costs.
// So small packages that wait to be stored while others are being stored
// go out together, one after the other, in one batch: a batch stores a
// prefix of what it was sent, so the part of each package it stores is a
// prefix of that package, and storeInOrder goes on from there for any
// package the batch did not store whole, exactly as after a batch of its
// own. A package that finds a batch slot free is sent at once, alone, so a
// lone webhook's packages are never held back; one that finds every slot
// taken waits for the first to end (where it would otherwise have started
// a batch of its own beside them) and then goes with all that waited.
const (
	// groupMaxPackage: packages with fewer messages than this are
	// grouped; bigger ones are a batch of their own.
	groupMaxPackage = 256
	// groupMaxMessages bounds the messages of one group.
	groupMaxMessages = 1024
	// groupSlots is how many batches of small packages are in flight at
	// once: while one waits for the server the other is sent, so a
	// package seldom waits for a whole batch, and the next group gathers.
	// With 16 webhooks of 20-event packages on two cores, 1 and 2 cost
	// the same CPU per package (groups of 6.8 and 4.1 packages), 4 more
	// (2.4; docs/performance.md).
	groupSlots = 2
)

// errGroupFailed: a message of another package in the same batch could
// not be sent. It says nothing about this package, which goes on alone.
var errGroupFailed = errors.New("the batch shared with other packages failed")

// grouper hands the small packages waiting to be stored to batches, at
// most slots of them in flight at once. Its methods are safe for
// concurrent use.
type grouper struct {
	h     *Handler
	slots int

	mu      sync.Mutex
	busy    int       // batches in flight
	waiting []*member // in arrival order
}

// member is one package in, or waiting for, a group.
type member struct {
	p    *publication
	from int              // the first of p's messages to send
	done chan groupResult // the batch's verdict on p; buffered
	lead chan []*member   // a group for this member to send; buffered
}

// groupResult is what a group's batch did with one of its packages.
type groupResult struct {
	stored int  // messages acknowledged, from the package's first
	allDup bool // the batch stored nothing new: all were duplicates
	err    error
}

func newGrouper(h *Handler, slots int) *grouper { return &grouper{h: h, slots: slots} }

// store stores p's messages as part of a batch, from its first, and
// returns how many of them, from the first, the batch acknowledged,
// counting them into out; an error unless that is all of them. When ctx
// ends while p is still waiting for a batch, nothing of p was sent.
func (g *grouper) store(ctx context.Context, p *publication, out *outcome) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	g.mu.Lock()
	if g.busy < g.slots {
		g.busy++
		g.mu.Unlock()
		r := g.h.sendBatch(ctx, []*member{{p: p}})[0]
		g.handOn()
		return g.h.booked(p, 0, r, out)
	}
	m := &member{p: p, done: make(chan groupResult, 1), lead: make(chan []*member, 1)}
	g.waiting = append(g.waiting, m)
	g.mu.Unlock()
	cancelled := ctx.Done()
	for {
		select {
		case r := <-m.done:
			return g.h.booked(p, 0, r, out)
		case grp := <-m.lead:
			g.send(grp)
		case <-cancelled:
			g.mu.Lock()
			i := slices.Index(g.waiting, m)
			if i >= 0 {
				g.waiting = slices.Delete(g.waiting, i, i+1)
			}
			g.mu.Unlock()
			if i >= 0 {
				return 0, ctx.Err()
			}
			// Already in a group: its sender may need this goroutine
			// (the lead), and the batch's waits for the server are
			// bounded by batchAckWait each.
			cancelled = nil
		}
	}
}

// send stores grp as one batch, tells each member what became of it, and
// passes the batch slot on.
func (g *grouper) send(grp []*member) {
	// Not the lead's request context: the batch is every member's. Its
	// waits are bounded by batchAckWait all the same.
	for i, r := range g.h.sendBatch(context.Background(), grp) {
		grp[i].done <- r
	}
	g.handOn()
}

// handOn passes a batch slot that has become free to the packages waiting
// for one, as many as a group holds, or frees it if none is waiting.
func (g *grouper) handOn() {
	g.mu.Lock()
	if len(g.waiting) == 0 {
		g.busy--
		g.mu.Unlock()
		return
	}
	next, msgs := 0, 0
	for next < len(g.waiting) && (next == 0 || msgs+g.waiting[next].p.len() <= groupMaxMessages) {
		msgs += g.waiting[next].p.len()
		next++
	}
	grp := slices.Clone(g.waiting[:next])
	g.waiting = slices.Delete(g.waiting, 0, next)
	g.mu.Unlock()
	grp[0].lead <- grp
}
