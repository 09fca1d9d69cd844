package relay_test

import (
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/upvest-relay/upvest-relay/relay"
)

// Redrive builds, for data that parses today, exactly the messages the
// handler publishes for the same bytes live.
func TestRedriveBuildsTheLiveMessages(t *testing.T) {
	first, second := event("r1", "ORDER.FILLED"), event("r2", "USER_CHECK.PASSED")
	body := pkg(first, second)
	f := newFixture(t, acceptAll)
	if r := f.post(body); r.status != http.StatusOK {
		t.Fatalf("post: %d (%s), want 200", r.status, r.body)
	}
	live := f.stored()
	if len(live) != 2 {
		t.Fatalf("stored %d messages, want 2", len(live))
	}
	same := func(t *testing.T, got []*nats.Msg, want ...int) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("Redrive gave %d messages, want %d", len(got), len(want))
		}
		for i, w := range want {
			g, l := got[i], live[w]
			if g.Subject != l.Subject || string(g.Data) != string(l.Data) || !maps.EqualFunc(g.Header, l.Header, slices.Equal) {
				t.Errorf("message %d:\n got %s %v %s\nwant %s %v %s", i, g.Subject, g.Header, g.Data, l.Subject, l.Header, l.Data)
			}
		}
	}

	t.Run("whole body", func(t *testing.T) {
		got, err := relay.Redrive("upvest", sourceBase, body, -1)
		if err != nil {
			t.Fatalf("Redrive: %v", err)
		}
		same(t, got, 0, 1)
	})
	t.Run("one element", func(t *testing.T) {
		got, err := relay.Redrive("upvest", sourceBase, []byte(second), 1)
		if err != nil {
			t.Fatalf("Redrive: %v", err)
		}
		same(t, got, 1)
	})
}

func TestRedriveStillFailing(t *testing.T) {
	good := event("s1", "ORDER.FILLED")
	noType := `{"id":"t1","object":{}}`
	noID := `{"type":"ORDER.FILLED"}`
	tests := []struct {
		name     string
		data     string
		index    int
		wantMsgs int
		want     []error
		wantText []string
	}{
		{"not JSON", `{"payload":[`, -1, 0, []error{relay.ErrInvalidJSON}, nil},
		{"no payload", `{"events":[]}`, -1, 0, []error{relay.ErrNoPayload}, nil},
		{"payload not an array", `{"payload":{}}`, -1, 0, []error{relay.ErrPayloadNotArray}, nil},
		{"element without type", noType, 3, 0, []error{relay.ErrEventMissingType}, nil},
		{"element without id", noID, 0, 0, []error{relay.ErrEventMissingID}, nil},
		{"element not JSON", `{"id":"x",`, 0, 0, []error{relay.ErrInvalidJSON}, nil},
		{"a body with two bad elements of three", string(pkg(noID, good, noType)), -1, 1,
			[]error{relay.ErrEventMissingID, relay.ErrEventMissingType}, []string{"payload element 0", "payload element 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs, err := relay.Redrive("upvest", sourceBase, []byte(tt.data), tt.index)
			if len(msgs) != tt.wantMsgs {
				t.Errorf("Redrive gave %d messages, want %d", len(msgs), tt.wantMsgs)
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Redrive error = %v, want it to wrap %v", err, w)
				}
			}
			for _, w := range tt.wantText {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Redrive error = %v, want it to name %q", err, w)
				}
			}
		})
	}
	if msgs, err := relay.Redrive("upvest", sourceBase, pkg(), -1); len(msgs) != 0 || err != nil {
		t.Errorf("Redrive(empty payload) = %d messages, %v; want none and no error", len(msgs), err)
	}
}
