package relay_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	cenats "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// wireCases are events whose wire format is pinned by golden files.
var wireCases = []struct {
	golden string
	raw    string
}{
	{"order_filled", `{"id":"6b8a4c1e-2f3d-4e5a-9b7c-1d2e3f4a5b6c","created_at":"2024-05-01T10:00:00.123456Z","type":"ORDER.FILLED","object":{"id":"0f0e0d0c-0b0a-4090-8070-605040302010","user_id":"a1b2c3d4-0000-4000-8000-000000000001","status":"FILLED","side":"BUY","quantity":"1.5"},"webhook_id":"b1f0c9a6-9d38-4a4f-bc44-0c8a3b7f0d11"}`},
	{"user_check_passed", `{"id":"7c9b5d2f-3a4e-4f6b-8c8d-2e3f4a5b6c7d","created_at":"2024-05-01T10:00:01+02:00","type":"USER_CHECK.PASSED","object":{"id":"5e4d3c2b-1a09-4876-9543-210fedcba987","user_id":"a1b2c3d4-0000-4000-8000-000000000001","check":"KYC"},"webhook_id":"b1f0c9a6-9d38-4a4f-bc44-0c8a3b7f0d11"}`},
	{"unknown_future_type", `{"id":"8d0c6e3a-4b5f-4a7c-9d9e-3f4a5b6c7d8e","created_at":"2024-05-01T10:00:02Z","type":"LUNAR_SETTLEMENT.DOCKED","object":{"id":"moon-1","new_field":[1,2,3]},"webhook_id":"b1f0c9a6-9d38-4a4f-bc44-0c8a3b7f0d11"}`},
	{"non_ascii_headers", `{"id":"evt 42 \"quoted\" 100%","created_at":"2024-05-01T10:00:03Z","type":"USER.UPDATED","object":{"id":"Müller & Söhne € 😀","name":"J\u00fcrgen"},"webhook_id":"wh-ü"}`},
	{"time_not_rfc3339", `{"id":"9e1d7f4b-5c6a-4b8d-8eaf-4a5b6c7d8e9f","created_at":"yesterday","type":"POSITION.UPDATED","object":{"id":"pos-1"},"webhook_id":"b1f0c9a6-9d38-4a4f-bc44-0c8a3b7f0d11"}`},
	{"object_without_id", `{"id":"ae2f8a5c-6d7b-4c9e-9fb0-5b6c7d8e9fa0","created_at":"2024-05-01T10:00:04.5Z","type":"REPORT.CREATED","object":{"url":"https://example.invalid/r.pdf"},"webhook_id":"b1f0c9a6-9d38-4a4f-bc44-0c8a3b7f0d11"}`},
}

// render writes a stored message as text: subject, headers sorted by name,
// a blank line, the data.
func render(m *jetstream.RawStreamMsg) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "subject: %s\n", m.Subject)
	keys := make([]string, 0, len(m.Header))
	for k := range m.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range m.Header[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteString("\n")
	b.Write(m.Data)
	b.WriteString("\n")
	return b.Bytes()
}

func TestWireFormatGolden(t *testing.T) {
	f := newFixture(t, acceptAll)
	raws := make([]string, len(wireCases))
	for i, c := range wireCases {
		raws[i] = c.raw
	}
	if r := f.post(pkg(raws...)); r.status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", r.status, r.body)
	}
	msgs := f.stored()
	if len(msgs) != len(wireCases) {
		t.Fatalf("stored %d messages, want %d", len(msgs), len(wireCases))
	}
	for i, c := range wireCases {
		t.Run(c.golden, func(t *testing.T) {
			got := render(msgs[i])
			path := filepath.Join("testdata", "golden", c.golden+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run go test -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("wire format of %s:\n--- got\n%s\n--- want (%s)\n%s", c.golden, got, path, want)
			}
			for k, vs := range msgs[i].Header {
				for _, v := range vs {
					if !printableASCII(v) {
						t.Errorf("header %s = %q is not printable ASCII", k, v)
					}
				}
			}
		})
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '!' || s[i] > '~' {
			return false
		}
	}
	return s != ""
}

// TestCloudEventsSDKDecodesEveryMessage consumes the stream with the
// CloudEvents Go SDK's JetStream protocol, as a downstream service would,
// and checks that every message, dead letters included, is a valid event
// whose data is the original bytes.
func TestCloudEventsSDKDecodesEveryMessage(t *testing.T) {
	f := newFixture(t, acceptAll)
	raws := make([]string, 0, len(wireCases)+1)
	for _, c := range wireCases {
		raws = append(raws, c.raw)
	}
	deadEvent := `{"type":"ORDER.FILLED","object":{}}`
	raws = append(raws, deadEvent)
	want := map[string][]byte{} // Nats-Msg-Id -> data
	if r := f.post(pkg(raws...)); r.status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", r.status, r.body)
	}
	notPackage := []byte("not json \x00\xff")
	if r := f.post(notPackage); r.status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", r.status, r.body)
	}
	for _, m := range f.stored() {
		want[m.Header.Get("Nats-Msg-Id")] = m.Data
	}
	if len(want) != len(raws)+1 {
		t.Fatalf("stored %d distinct messages, want %d", len(want), len(raws)+1)
	}

	consumer, err := cenats.NewConsumerFromConn(f.nc, streamName, "upvest.>", nil, []nats.SubOpt{nats.OrderedConsumer()})
	if err != nil {
		t.Fatalf("NewConsumerFromConn: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opened := make(chan error, 1)
	go func() { opened <- consumer.OpenInbound(ctx) }()
	defer func() {
		cancel()
		if err := <-opened; err != nil {
			t.Errorf("OpenInbound: %v", err)
		}
	}()

	originals := map[string]string{}
	for _, c := range wireCases {
		originals[c.golden] = c.raw
	}
	for range len(want) {
		msg, err := consumer.Receive(ctx)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		e, err := binding.ToEvent(ctx, msg)
		if err != nil {
			t.Fatalf("ToEvent: %v", err)
		}
		if err := e.Validate(); err != nil {
			t.Errorf("event %s invalid: %v", e.ID(), err)
		}
		data, ok := want[e.ID()]
		if !ok {
			t.Errorf("event id %q matches no stored Nats-Msg-Id", e.ID())
			continue
		}
		if !bytes.Equal(e.Data(), data) {
			t.Errorf("event %s data = %q, want %q", e.ID(), e.Data(), data)
		}
		delete(want, e.ID())
		if err := msg.Finish(nil); err != nil {
			t.Errorf("Finish: %v", err)
		}
		// Percent-decoding the attributes gives back the original text.
		if strings.HasPrefix(e.ID(), "evt") {
			if got, _ := url.PathUnescape(e.ID()); got != `evt 42 "quoted" 100%` {
				t.Errorf("decoded id = %q, want the original", got)
			}
			if got, _ := url.PathUnescape(e.Subject()); got != "Müller & Söhne € 😀" {
				t.Errorf("decoded subject = %q, want the original", got)
			}
		}
		if e.DataContentType() == "" || e.Source() == "" || e.Type() == "" {
			t.Errorf("event %s lacks datacontenttype, source or type: %v", e.ID(), e)
		}
	}
	if len(want) != 0 {
		t.Errorf("messages never decoded: %v", want)
	}
}
