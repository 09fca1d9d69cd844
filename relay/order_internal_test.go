package relay

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// CheckOrder checks that the events of every package in want (its event
// ids, in package order) are each stored exactly once in msgs (a stream's
// messages in stream order) and in package order; other messages are
// ignored. It is exported (in a test file) for the external tests.
func CheckOrder(t testing.TB, msgs []*jetstream.RawStreamMsg, want map[string][]string) {
	t.Helper()
	pos := map[string]int{} // id -> index in stream order
	for i, m := range msgs {
		id := m.Header.Get(jetstream.MsgIDHeader)
		if _, dup := pos[id]; dup {
			t.Errorf("event %s stored twice (stream messages %d and %d)", id, pos[id], i)
		}
		pos[id] = i
	}
	for name, events := range want {
		last := -1
		for j, id := range events {
			at, ok := pos[id]
			switch {
			case !ok:
				t.Errorf("package %s: event %d (%s) not stored", name, j, id)
			case at < last:
				t.Errorf("package %s: event %d (%s) stored before event %d", name, j, id, j-1)
			}
			last = at
		}
	}
}

// StoredMsgs returns every message in stream s, in stream order. It is
// exported (in a test file) for the external tests.
func StoredMsgs(t testing.TB, s jetstream.Stream) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := st.State.FirstSeq; st.State.Msgs > 0 && seq <= st.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("GetMsg(%d): %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}
