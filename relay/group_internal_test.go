package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
)

// storeFixture is a handler on a real JetStream server, its connection,
// the stream, and a tap that sees every message published to the
// stream's subjects.
type storeFixture struct {
	h      *Handler
	nc     *nats.Conn
	stream jetstream.Stream
	mu     sync.Mutex
	tapped []*nats.Msg
}

func newStoreFixture(t *testing.T) *storeFixture {
	t.Helper()
	srv, nc, js := brokertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := broker.EnsureStream(ctx, js, broker.StreamOptions{
		Name: "UPVEST", Prefix: DefaultPrefix, MaxAge: time.Hour, Replicas: 1, Duplicates: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler("/webhooks/upvest", acceptEverything{}, js)
	if err != nil {
		t.Fatal(err)
	}
	f := &storeFixture{h: h, nc: nc, stream: stream}
	tap := brokertest.Connect(t, srv.ClientURL())
	if _, err := tap.Subscribe(DefaultPrefix+".>", func(m *nats.Msg) {
		f.mu.Lock()
		f.tapped = append(f.tapped, m)
		f.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := tap.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// batchStarts is how many fast-ingest batches the tap saw begin among
// the first msgs messages published (it waits for them to reach the
// tap): the first message of a batch asks for its reply on
// <inbox>.<flow>.<gap>.1.0.$FI.
func (f *storeFixture) batchStarts(t *testing.T, msgs int) int {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("the tap sees %d messages", msgs), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.tapped) >= msgs
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.tapped[:msgs] {
		if strings.HasSuffix(m.Reply, ".1.0.$FI") {
			n++
		}
	}
	return n
}

// stored is every message in the stream, in stream order.
func (f *storeFixture) stored(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	return StoredMsgs(t, f.stream)
}

// eventIDs is the event ids of packages ps, by package, as CheckOrder
// wants them.
func eventIDs(ps ...*publication) map[string][]string {
	want := map[string][]string{}
	for k, p := range ps {
		name := fmt.Sprintf("package %d", k)
		for i := range p.len() {
			want[name] = append(want[name], p.pp.str(p.pp.elems[i].f[fID]))
		}
	}
	return want
}

// hold takes every batch slot, as batches in flight would.
func (g *grouper) hold() {
	g.mu.Lock()
	g.busy = g.slots
	g.mu.Unlock()
}

// queued is how many packages wait for a batch.
func (g *grouper) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiting)
}

// publishAll publishes ps concurrently; it returns the outcomes and
// errors once all have been queued for a batch and then handed a slot.
func publishAll(t *testing.T, h *Handler, ps []*publication, ctxs []context.Context) ([]outcome, []error) {
	t.Helper()
	outs := make([]outcome, len(ps))
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	h.group.hold()
	for i, p := range ps {
		wg.Go(func() { errs[i] = h.publish(ctxs[i], p, &outs[i]) })
		// One at a time, so that the queue is in this order.
		testkit.Eventually(t, 10*time.Second, fmt.Sprintf("package %d waits for a batch", i), func() bool { return h.group.queued() == i+1 })
	}
	h.group.handOn()
	wg.Wait()
	return outs, errs
}

func backgrounds(n int) []context.Context {
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctxs[i] = context.Background()
	}
	return ctxs
}

// TestWaitingPackagesShareOneBatch: packages that wait while a batch is in
// flight are stored by one batch together, each whole, in package order,
// each event once, and each counted as its own.
func TestWaitingPackagesShareOneBatch(t *testing.T) {
	t.Parallel()
	f := newStoreFixture(t)
	var ps []*publication
	var want []string
	for run := range 5 {
		p, _ := f.h.messages(BenchPackage(20, run), "req")
		ps = append(ps, p)
		for i := range p.len() {
			want = append(want, p.pp.str(p.pp.elems[i].f[fID]))
		}
	}
	outs, errs := publishAll(t, f.h, ps, backgrounds(len(ps)))
	for i := range ps {
		if errs[i] != nil || outs[i].Published != 20 || outs[i].Duplicates != 0 {
			t.Errorf("package %d: %+v, %v; want 20 published", i, outs[i], errs[i])
		}
	}
	// One batch, so the packages one after the other, in queue order.
	var got []string
	for _, m := range f.stored(t) {
		got = append(got, m.Header.Get(jetstream.MsgIDHeader))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("stream holds %d messages, not the 100 events in package order:\n%v", len(got), got)
	}
	if n := f.batchStarts(t, 100); n != 1 {
		t.Errorf("%d batches stored the waiting packages, want 1", n)
	}
	var hist dto.Metric
	if err := f.h.metrics.batchPackages.Write(&hist); err != nil {
		t.Fatal(err)
	}
	if h := hist.GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 5 {
		t.Errorf("relay_batch_packages: %d batches, %v packages; want 1 batch of 5", h.GetSampleCount(), h.GetSampleSum())
	}

	// The same packages again: every event a duplicate, counted as one.
	outs, errs = publishAll(t, f.h, ps, backgrounds(len(ps)))
	for i := range ps {
		if errs[i] != nil || outs[i].Duplicates != 20 || outs[i].Published != 0 {
			t.Errorf("package %d again: %+v, %v; want 20 duplicates", i, outs[i], errs[i])
		}
	}
	if got := f.stored(t); len(got) != 100 {
		t.Errorf("stream holds %d messages after the retry, want 100", len(got))
	}
}

// TestPackageAloneIsNotHeldBack: with a batch slot free a package is sent
// at once, in a batch of its own.
func TestPackageAloneIsNotHeldBack(t *testing.T) {
	t.Parallel()
	f := newStoreFixture(t)
	for run := range 3 {
		p, _ := f.h.messages(BenchPackage(20, run), "req")
		var out outcome
		if err := f.h.publish(context.Background(), p, &out); err != nil || out.Published != 20 {
			t.Fatalf("package %d: %+v, %v", run, out, err)
		}
	}
	if n := f.batchStarts(t, 60); n != 3 {
		t.Errorf("%d batches for 3 packages sent one after the other, want 3", n)
	}
	if f.h.group.queued() != 0 || f.h.group.busy != 0 {
		t.Errorf("grouper not idle: %d waiting, %d busy", f.h.group.queued(), f.h.group.busy)
	}
}

// TestPackageLeavesTheQueueWhenItsRequestEnds: a package whose request
// ends while it waits for a batch is not sent at all, and the others are
// stored without it.
func TestPackageLeavesTheQueueWhenItsRequestEnds(t *testing.T) {
	t.Parallel()
	f := newStoreFixture(t)
	first, _ := f.h.messages(BenchPackage(20, 0), "req")
	gone, _ := f.h.messages(BenchPackage(20, 1), "req")
	last, _ := f.h.messages(BenchPackage(20, 2), "req")
	ctx, cancel := context.WithCancel(context.Background())
	f.h.group.hold()
	var wg sync.WaitGroup
	var outs [3]outcome
	var errs [3]error
	wg.Go(func() { errs[0] = f.h.publish(context.Background(), first, &outs[0]) })
	testkit.Eventually(t, 10*time.Second, "first package waits", func() bool { return f.h.group.queued() == 1 })
	wg.Go(func() { errs[1] = f.h.publish(ctx, gone, &outs[1]) })
	testkit.Eventually(t, 10*time.Second, "second package waits", func() bool { return f.h.group.queued() == 2 })
	wg.Go(func() { errs[2] = f.h.publish(context.Background(), last, &outs[2]) })
	testkit.Eventually(t, 10*time.Second, "third package waits", func() bool { return f.h.group.queued() == 3 })
	cancel()
	testkit.Eventually(t, 10*time.Second, "the ended request's package leaves the queue", func() bool { return f.h.group.queued() == 2 })
	f.h.group.handOn()
	wg.Wait()
	if !errors.Is(errs[1], context.Canceled) || outs[1].Published != 0 {
		t.Errorf("ended request: %+v, %v; want context.Canceled, nothing published", outs[1], errs[1])
	}
	for _, i := range []int{0, 2} {
		if errs[i] != nil || outs[i].Published != 20 {
			t.Errorf("package %d: %+v, %v; want 20 published", i, outs[i], errs[i])
		}
	}
	if got := f.stored(t); len(got) != 40 {
		t.Errorf("stream holds %d messages, want the 40 of the two packages left", len(got))
	}
	if n := f.batchStarts(t, 40); n != 1 {
		t.Errorf("%d batches, want 1", n)
	}
}

// TestGroupWithAPackageThatCannotBeStored: a package with a message NATS
// cannot carry fails the batch it shares; it is refused, and the packages
// grouped with it are still stored whole, in order, each event once.
func TestGroupWithAPackageThatCannotBeStored(t *testing.T) {
	t.Parallel()
	f := newStoreFixture(t)
	good1, _ := f.h.messages(BenchPackage(20, 0), "req")
	huge := fmt.Sprintf(`{"payload":[%s,{"id":"huge","created_at":"2024-05-01T10:00:00Z","type":"ORDER.FILLED","object":{"id":"o","note":%q},"webhook_id":"w"}]}`,
		strings.TrimSuffix(strings.TrimPrefix(string(BenchPackage(2, 1)), `{"payload":[`), `]}`),
		bytes.Repeat([]byte("x"), broker.MaxPayload+1))
	bad, _ := f.h.messages([]byte(huge), "req")
	good2, _ := f.h.messages(BenchPackage(20, 2), "req")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	outs, errs := publishAll(t, f.h, []*publication{good1, bad, good2}, []context.Context{ctx, ctx, ctx})
	if !errors.Is(errs[1], nats.ErrMaxPayload) {
		t.Errorf("package with an event over the largest message: %+v, %v; want nats.ErrMaxPayload", outs[1], errs[1])
	}
	for i := range 2 {
		if errs[2*i] != nil || outs[2*i].Published+outs[2*i].Duplicates != 20 {
			t.Errorf("package %d: %+v, %v; want 20 stored", 2*i, outs[2*i], errs[2*i])
		}
	}
	// The failed package's first events may be stored (a prefix of it);
	// the others' are each stored once, in package order.
	CheckOrder(t, f.stored(t), eventIDs(good1, good2))
}
