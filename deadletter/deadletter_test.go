package deadletter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/deadletter"
	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
	"github.com/upvest-relay/upvest-relay/verify"
)

const (
	streamName = "UPVEST"
	prefix     = "upvest"
	dlSubject  = "upvest._deadletter"
	webhookID  = "b1f0c9a6-9d38-4a4f-bc44-0c8a3b7f0d11"
)

// relayFixture is the real relay handler, verifying with the real verifier
// against an emulator's keys and publishing into a real embedded
// JetStream, and a Store on the same stream.
type relayFixture struct {
	t     *testing.T
	js    jetstream.JetStream
	emu   *emulator.Server
	url   string
	store *deadletter.Store
}

func newRelayFixture(t *testing.T) *relayFixture {
	t.Helper()
	_, _, js := brokertest.New(t)
	ctx := context.Background()
	if _, err := broker.EnsureStream(ctx, js, broker.StreamOptions{Name: streamName, Prefix: prefix, MaxAge: time.Hour, Replicas: 1, Duplicates: time.Hour}); err != nil {
		t.Fatal(err)
	}
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	jwks, err := emu.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := verify.ParseKeys(jwks)
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	h, err := relay.NewHandler("/webhooks/upvest", v, js, relay.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	store, err := deadletter.New(js, streamName, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return &relayFixture{t: t, js: js, emu: emu, url: srv.URL + "/webhooks/upvest", store: store}
}

// post sends body to the relay signed as Upvest signs deliveries, wants
// 200 and returns the request id.
func (f *relayFixture) post(body string) string {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url, bytes.NewReader([]byte(body)))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := f.emu.SignDelivery(req, []byte(body)); err != nil {
		f.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("post: %d, want 200", resp.StatusCode)
	}
	return resp.Header.Get(relay.RequestIDHeader)
}

// craft stores a dead letter directly, as a relay with an older splitter
// stored what it refused: same subject and headers as the relay's.
func (f *relayFixture) craft(data, reason string, index int, source string) uint64 {
	f.t.Helper()
	id := fmt.Sprintf("dl-crafted-%d-%d", time.Now().UnixNano(), index)
	m := nats.NewMsg(dlSubject)
	for k, v := range map[string]string{
		"ce-specversion": "1.0", "ce-id": id, "ce-source": source, "ce-type": relay.DeadLetterType,
		"ce-datacontenttype": "application/json", "content-type": "application/json",
		nats.MsgIdHdr: id, relay.HeaderDeadLetterReason: reason, relay.HeaderRequestID: "old-request",
	} {
		m.Header[k] = []string{v}
	}
	if index >= 0 {
		m.Header[relay.HeaderDeadLetterIndex] = []string{strconv.Itoa(index)}
	}
	m.Data = []byte(data)
	ack, err := f.js.PublishMsg(context.Background(), m)
	if err != nil {
		f.t.Fatal(err)
	}
	return ack.Sequence
}

// all returns every message of the stream, in order.
func (f *relayFixture) all() []*jetstream.RawStreamMsg {
	f.t.Helper()
	ctx := context.Background()
	s, err := f.js.Stream(ctx, streamName)
	if err != nil {
		f.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			f.t.Fatalf("GetMsg(%d): %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// list returns every dead letter List gives for the window.
func (f *relayFixture) list(since, until time.Time) []deadletter.Letter {
	f.t.Helper()
	var got []deadletter.Letter
	if err := f.store.List(context.Background(), since, until, func(l deadletter.Letter) error {
		got = append(got, l)
		return nil
	}); err != nil {
		f.t.Fatalf("List: %v", err)
	}
	return got
}

func event(id, typ string) string {
	return fmt.Sprintf(`{"id":%q,"created_at":"2026-12-01T10:00:00.5Z","type":%q,"object":{"id":"obj-%s","amount":"1.50"},"webhook_id":%q}`, id, typ, id, webhookID)
}

func pkg(events ...string) string {
	b := `{"payload":[`
	for i, e := range events {
		if i > 0 {
			b += ", "
		}
		b += e
	}
	return b + `]}`
}

func TestListAndGetWhatTheRelayDeadLettered(t *testing.T) {
	f := newRelayFixture(t)
	noType := `{"id":"t-1","created_at":"2026-12-01T10:00:00Z","object":{},"webhook_id":"w"}`
	bodies := []string{
		`{"payload":[{"id":`,                    // not JSON
		`{"events":[]}`,                         // no payload
		pkg(event("ok-1", "ORDER.NEW"), noType), // one good event, one without type
	}
	var reqIDs []string
	for _, b := range bodies {
		reqIDs = append(reqIDs, f.post(b))
	}
	type want struct {
		reason, reqID, data string
		index               int
	}
	wants := []want{
		{relay.DeadLetterInvalidJSON, reqIDs[0], bodies[0], -1},
		{relay.DeadLetterNoPayload, reqIDs[1], bodies[1], -1},
		{relay.DeadLetterEventMissingType, reqIDs[2], noType, 1},
	}
	got := f.list(time.Time{}, time.Time{})
	if len(got) != len(wants) {
		t.Fatalf("List gave %d dead letters, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		l := got[i]
		if l.Reason != w.reason || l.RequestID != w.reqID || l.Index != w.index || l.Size != len(w.data) || l.Subject != dlSubject || l.Data != nil || l.Time.IsZero() || l.ID == "" {
			t.Errorf("dead letter %d = %+v; want reason %s, request id %s, index %d, size %d, no data", i, l, w.reason, w.reqID, w.index, len(w.data))
		}
		if l.Header.Get(nats.MsgSize) != "" {
			t.Errorf("dead letter %d headers hold %s, which the server adds to headers-only reads", i, nats.MsgSize)
		}
		g, err := f.store.Get(context.Background(), l.Seq)
		if err != nil {
			t.Fatalf("Get(%d): %v", l.Seq, err)
		}
		if string(g.Data) != w.data || g.Reason != w.reason || g.Index != w.index || g.Header.Get(relay.HeaderDeadLetterReason) != w.reason || g.Header.Get(nats.MsgIdHdr) != l.ID {
			t.Errorf("Get(%d) = %+v, data %q; want the raw bytes %q and the headers", l.Seq, g, g.Data, w.data)
		}
	}

	// Windows on storage time.
	last := got[len(got)-1].Time
	if n := len(f.list(last.Add(time.Nanosecond), time.Time{})); n != 0 {
		t.Errorf("List after the last dead letter gave %d, want 0", n)
	}
	if n := len(f.list(time.Time{}, got[1].Time)); n != 2 {
		t.Errorf("List until the second dead letter gave %d, want 2", n)
	}

	// Get refuses what is not a dead letter.
	var eventSeq uint64
	for _, m := range f.all() {
		if m.Subject != dlSubject {
			eventSeq = m.Sequence
		}
	}
	if _, err := f.store.Get(context.Background(), eventSeq); !errors.Is(err, deadletter.ErrNotDeadLetter) {
		t.Errorf("Get(event %d) = %v, want ErrNotDeadLetter", eventSeq, err)
	}
	if _, err := f.store.Get(context.Background(), 9999); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("Get(9999) = %v, want ErrNotFound", err)
	}
}

func TestNewRefusesNonsense(t *testing.T) {
	_, _, js := brokertest.New(t)
	for name, tt := range map[string]struct {
		js             deadletter.JetStream
		stream, prefix string
	}{
		"no JetStream":   {nil, streamName, prefix},
		"no stream":      {js, "", prefix},
		"invalid prefix": {js, streamName, "up.>"},
	} {
		if _, err := deadletter.New(tt.js, tt.stream, tt.prefix); !errors.Is(err, deadletter.ErrInvalid) {
			t.Errorf("%s: New = %v, want ErrInvalid", name, err)
		}
	}
}

// TestRedrive is the realistic case: dead letters that an older splitter
// stored although today's relay accepts them (crafted in the stream as
// that relay stored them) are redriven into the events a live delivery
// gives, once, however often redrive runs; what the relay refuses today
// (produced by the real handler from validly signed bad packages) stays
// where it is and is reported.
func TestRedrive(t *testing.T) {
	f := newRelayFixture(t)
	ctx := context.Background()

	// What today's relay refuses, through the real handler.
	noType := `{"id":"t-1","created_at":"2026-12-01T10:00:00Z","object":{},"webhook_id":"w"}`
	f.post(`{"payload":[{"id":`)
	f.post(pkg(event("live-1", "ORDER.NEW"), noType))

	// What an older splitter refused: a whole package (two events, in
	// order) and one element. The package arrived from production, so its
	// events get production's source whatever this Store's default is.
	body := pkg(event("old-1", "ORDER.FILLED"), event("old-2", "ORDER.SETTLED"))
	bodySeq := f.craft(body, relay.DeadLetterNoPayload, -1, "https://api.upvest.co/webhooks")
	element := event("old-3", "USER_CHECK.PASSED")
	f.craft(element, relay.DeadLetterEventMissingID, 4, "https://sandbox.upvest.co/webhooks")
	// A package of which one element still fails today.
	f.craft(pkg(event("old-4", "ORDER.NEW"), noType), relay.DeadLetterPayloadNotArray, -1, "https://sandbox.upvest.co/webhooks")
	// And one that still fails after those (results keep stream order).
	f.craft(`{"payload":[`, relay.DeadLetterInvalidJSON, -1, "https://sandbox.upvest.co/webhooks")

	before := f.all()
	deadBefore := 0
	for _, m := range before {
		if m.Subject == dlSubject {
			deadBefore++
		}
	}

	// A dry run stores nothing and says what a redrive would do.
	plan, err := f.store.Redrive(ctx, deadletter.Selection{}, deadletter.DryRun())
	if err != nil {
		t.Fatalf("Redrive(dry run): %v", err)
	}
	if plan.Stored != 4 || plan.Duplicates != 0 || plan.StillFailing != 4 || !plan.DryRun {
		t.Errorf("dry run = stored %d, duplicates %d, still failing %d; want 4, 0, 4", plan.Stored, plan.Duplicates, plan.StillFailing)
	}
	if n := len(f.all()); n != len(before) {
		t.Fatalf("dry run stored %d messages", n-len(before))
	}

	r, err := f.store.Redrive(ctx, deadletter.Selection{})
	if err != nil {
		t.Fatalf("Redrive: %v", err)
	}
	if r.Stored != 4 || r.Duplicates != 0 || r.StillFailing != 4 || len(r.Results) != 6 {
		t.Fatalf("redrive = stored %d, duplicates %d, still failing %d, %d results; want 4, 0, 4, 6", r.Stored, r.Duplicates, r.StillFailing, len(r.Results))
	}
	wantErrs := []error{relay.ErrInvalidJSON, relay.ErrEventMissingType, nil, nil, relay.ErrEventMissingType, relay.ErrInvalidJSON}
	for i, res := range r.Results {
		if i > 0 && res.Letter.Seq <= r.Results[i-1].Letter.Seq {
			t.Errorf("result %d is seq %d after seq %d, want stream order", i, res.Letter.Seq, r.Results[i-1].Letter.Seq)
		}
		if w := wantErrs[i]; (w == nil) != (res.Err == nil) || (w != nil && !errors.Is(res.Err, w)) {
			t.Errorf("result %d (seq %d) error = %v, want %v", i, res.Letter.Seq, res.Err, w)
		}
	}

	after := f.all()
	added := after[len(before):]
	if len(added) != 4 {
		t.Fatalf("redrive stored %d messages, want 4", len(added))
	}
	wantIDs := []string{"old-1", "old-2", "old-3", "old-4"}
	wantSubjects := []string{"upvest.order.filled", "upvest.order.settled", "upvest.user_check.passed", "upvest.order.new"}
	for i, m := range added {
		if got := m.Header.Get("ce-id"); got != wantIDs[i] || m.Header.Get(nats.MsgIdHdr) != wantIDs[i] || m.Subject != wantSubjects[i] {
			t.Errorf("stored %d: %s ce-id %q Nats-Msg-Id %q; want %s %s", i, m.Subject, got, m.Header.Get(nats.MsgIdHdr), wantSubjects[i], wantIDs[i])
		}
	}
	if got, want := string(added[0].Data), event("old-1", "ORDER.FILLED"); got != want {
		t.Errorf("redriven data = %s, want the element byte for byte: %s", got, want)
	}
	if got, want := added[0].Header.Get("ce-source"), "https://api.upvest.co/webhooks/"+webhookID; got != want {
		t.Errorf("redriven ce-source = %q, want the base the dead letter arrived with: %q", got, want)
	}
	if got, want := added[2].Header.Get("ce-source"), "https://sandbox.upvest.co/webhooks/"+webhookID; got != want {
		t.Errorf("redriven ce-source = %q, want %q", got, want)
	}
	// The dead letters stay, every one of them.
	for i, m := range before {
		if after[i].Sequence != m.Sequence || after[i].Subject != m.Subject {
			t.Errorf("message %d changed: %s %d, was %s %d", i, after[i].Subject, after[i].Sequence, m.Subject, m.Sequence)
		}
	}

	// Again: nothing new, every event a duplicate, the same still failing.
	r2, err := f.store.Redrive(ctx, deadletter.Selection{})
	if err != nil {
		t.Fatalf("second Redrive: %v", err)
	}
	if r2.Stored != 0 || r2.Duplicates != 4 || r2.StillFailing != 4 {
		t.Errorf("second redrive = stored %d, duplicates %d, still failing %d; want 0, 4, 4", r2.Stored, r2.Duplicates, r2.StillFailing)
	}
	if n := len(f.all()); n != len(after) {
		t.Errorf("second redrive stored %d messages, want none", n-len(after))
	}

	// By sequence, and the mistakes a selection can hold.
	r3, err := f.store.Redrive(ctx, deadletter.Selection{Seqs: []uint64{bodySeq, bodySeq}})
	if err != nil || len(r3.Results) != 1 || r3.Duplicates != 2 || r3.Stored != 0 {
		t.Errorf("Redrive(seq %d twice) = %+v, %v; want one result with 2 duplicates", bodySeq, r3, err)
	}
	if _, err := f.store.Redrive(ctx, deadletter.Selection{Seqs: []uint64{added[0].Sequence}}); !errors.Is(err, deadletter.ErrNotDeadLetter) {
		t.Errorf("Redrive(an event's seq) = %v, want ErrNotDeadLetter", err)
	}
	if _, err := f.store.Redrive(ctx, deadletter.Selection{Seqs: []uint64{bodySeq}, Since: time.Now().Add(time.Hour)}); !errors.Is(err, deadletter.ErrOutsideWindow) {
		t.Errorf("Redrive(seq outside the window) = %v, want ErrOutsideWindow", err)
	}
	if _, err := f.store.Redrive(ctx, deadletter.Selection{Seqs: []uint64{99999}}); !errors.Is(err, deadletter.ErrNotFound) {
		t.Errorf("Redrive(missing seq) = %v, want ErrNotFound", err)
	}
	// An empty window redrives nothing, without an error.
	if r, err := f.store.Redrive(ctx, deadletter.Selection{Since: time.Now().Add(time.Hour)}); err != nil || len(r.Results) != 0 {
		t.Errorf("Redrive(empty window) = %+v, %v; want nothing", r, err)
	}
}

// TestRedriveFindsEventsPastTheDuplicateWindow: an event stored after the
// dead letter arrived but no longer covered by JetStream's duplicate window
// (stored here without a Nats-Msg-Id, which is how the server sees it once
// the window has passed) is not stored again.
func TestRedriveFindsEventsPastTheDuplicateWindow(t *testing.T) {
	f := newRelayFixture(t)
	ctx := context.Background()
	ev := event("kept-1", "ORDER.FILLED")
	f.craft(pkg(ev), relay.DeadLetterNoPayload, -1, "https://sandbox.upvest.co/webhooks")
	m := nats.NewMsg("upvest.order.filled")
	m.Header.Set("ce-id", "kept-1")
	m.Data = []byte(ev)
	if _, err := f.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	n := len(f.all())
	r, err := f.store.Redrive(ctx, deadletter.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Stored != 0 || r.Duplicates != 1 || r.StillFailing != 0 {
		t.Errorf("redrive = stored %d, duplicates %d, still failing %d; want 0, 1, 0", r.Stored, r.Duplicates, r.StillFailing)
	}
	if got := len(f.all()); got != n {
		t.Errorf("redrive stored %d messages, want none", got-n)
	}
}
