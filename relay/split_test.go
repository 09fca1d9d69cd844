package relay

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSplitKeepsRawBytes(t *testing.T) {
	e1 := `{ "id" : "a",  "type":"ORDER.FILLED", "object":{"x":"caf\u00e9", "n": 1.50} }`
	e2 := `{"id":"b","type":"USER.CREATED"}`
	tests := []struct {
		name    string
		body    string
		want    []string
		wantErr error
	}{
		{"two events", "{\"payload\":[" + e1 + ",\n\t" + e2 + "]}", []string{e1, e2}, nil},
		{"other members around", `{"meta":{"n":2},"payload":[` + e2 + `],"z":null}`, []string{e2}, nil},
		{"empty", `{"payload":[]}`, []string{}, nil},
		{"empty with spaces", ` { "payload" : [ ] } `, []string{}, nil},
		{"non-object elements", `{"payload":[1,"s",null,[]]}`, []string{`1`, `"s"`, `null`, `[]`}, nil},
		{"last duplicate key wins", `{"payload":[1],"payload":[2]}`, []string{`2`}, nil},
		{"invalid json", `{"payload":[`, nil, ErrInvalidJSON},
		{"empty body", ``, nil, ErrInvalidJSON},
		{"trailing garbage", `{"payload":[]} x`, nil, ErrInvalidJSON},
		{"array", `[]`, nil, ErrNoPayload},
		{"string", `"payload"`, nil, ErrNoPayload},
		{"null", `null`, nil, ErrNoPayload},
		{"no payload", `{"data":[]}`, nil, ErrNoPayload},
		{"payload in other case", `{"PAYLOAD":[]}`, nil, ErrNoPayload},
		{"payload object", `{"payload":{}}`, nil, ErrPayloadNotArray},
		{"payload null", `{"payload":null}`, nil, ErrPayloadNotArray},
		{"payload string", `{"payload":"[]"}`, nil, ErrPayloadNotArray},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split([]byte(tt.body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Split(%q) error = %v, want %v", tt.body, err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Split(%q) = %d events, want %d", tt.body, len(got), len(tt.want))
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("event %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseEvent(t *testing.T) {
	tests := []struct {
		raw     string
		want    event
		wantErr error
	}{
		{`{"id":"a","type":"ORDER.FILLED","created_at":"t","webhook_id":"w","object":{"id":"o"}}`,
			event{id: "a", typ: "ORDER.FILLED", createdAt: "t", webhookID: "w", objectID: "o"}, nil},
		{`{"id":"a","type":"X.Y","object":{"id":7}}`, event{id: "a", typ: "X.Y"}, nil},
		{`{"id":"a","type":"X.Y","object":"o","created_at":5,"webhook_id":null}`, event{id: "a", typ: "X.Y"}, nil},
		{`{"id":"a\u0000b","type":"X.Y"}`, event{id: "a\x00b", typ: "X.Y"}, nil},
		{`{"ID":"a","type":"X.Y"}`, event{}, ErrEventMissingID},
		{`{"id":"","type":"X.Y"}`, event{}, ErrEventMissingID},
		{`{"id":1,"type":"X.Y"}`, event{}, ErrEventMissingID},
		{`[]`, event{}, ErrEventMissingID},
		{`null`, event{}, ErrEventMissingID},
		{`{"id":"a"}`, event{}, ErrEventMissingType},
		{`{"id":"a","type":" "}`, event{}, ErrEventMissingType},
		{`{"id":"a","Type":"X.Y"}`, event{}, ErrEventMissingType},
	}
	for _, tt := range tests {
		got, err := parseEvent(json.RawMessage(tt.raw))
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("parseEvent(%s) error = %v, want %v", tt.raw, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		tt.want.raw = json.RawMessage(tt.raw)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("parseEvent(%s) = %+v, want %+v", tt.raw, got, tt.want)
		}
	}
}

func TestHeaderValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"6b8a4c1e-2f3d-4e5a", "6b8a4c1e-2f3d-4e5a"},
		{"https://sandbox.upvest.co/webhooks/x?y=1#z", "https://sandbox.upvest.co/webhooks/x?y=1#z"},
		// The example of the CloudEvents NATS binding, 3.1.3.2.
		{"Euro € 😀", "Euro%20%E2%82%AC%20%F0%9F%98%80"},
		{`a"b%c d`, "a%22b%25c%20d"},
		{"tab\tcr\rlf\n", "tab%09cr%0Dlf%0A"},
		{"\x00\x7f", "%00%7F"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := headerValue(tt.in); got != tt.want {
			t.Errorf("headerValue(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFamilyLabel(t *testing.T) {
	for in, want := range map[string]string{
		"order": "order", "user_check": "user_check", "tax_exemption": "tax_exemption",
		"lunar": "other", "": "other", "unknown": "other",
	} {
		if got := familyLabel(in); got != want {
			t.Errorf("familyLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzSplit checks that splitting never panics, that every event it
// returns is valid JSON and a byte-exact part of the input, and that every
// message built from the input has printable-ASCII headers and stays
// under the prefix.
func FuzzSplit(f *testing.F) {
	for _, seed := range []string{
		`{"payload":[{"id":"a","created_at":"2024-05-01T10:00:00Z","type":"ORDER.FILLED","object":{"id":"o"},"webhook_id":"w"}]}`,
		`{"payload":[{"id":"a","type":"USER_CHECK.PASSED"},{"id":"b","type":"X"}, {"type":"NOID.X"}, 1]}`,
		`{"payload":[]}`,
		`{"payload":null}`,
		`{"payload":{}}`,
		`{"PAYLOAD":[]}`,
		`[{"id":"a"}]`,
		`{"payload":[{"id":"é 😀 \"%","type":"A B.C*D>E","object":{"id":"\u0000\n"}}]}`,
		`{"payload":[{"id":"a","type":"..."}],"payload":[2]}`,
		`{"payload":[`,
		"\xff\xfe",
		`{"payload":[{"i\u0064":"esc","typ\u0065":"A.B","object":{"\u0069d":"o\"1"}}], "x":[{"]":"}"}]}`,
		`{"payload":[{"id":"a","id":5,"type":"A.B"},{"id":"\ud800","type":"\u00e9.\u0000"}]}`,
		` {"payload" : [ 1 , -2.5e3 , true , false , null , "a,b]" , {"}":"{"} ] } `,
		"{\"payload\":[{\"id\":\"\xff\",\"type\":\"A\"}]}",
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := Split(body)
		refEvents, refErr := splitReference(body)
		if !sameErr(err, refErr) || len(events) != len(refEvents) {
			t.Fatalf("Split = %d events, %v; encoding/json reference = %d events, %v", len(events), err, len(refEvents), refErr)
		}
		for i := range events {
			if !bytes.Equal(events[i], refEvents[i]) {
				t.Fatalf("event %d = %q, reference %q", i, events[i], refEvents[i])
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidJSON) && !errors.Is(err, ErrNoPayload) && !errors.Is(err, ErrPayloadNotArray) {
				t.Fatalf("Split error %v is none of its sentinels", err)
			}
			checkMsgHeaders(t, deadLetterMsg("upvest", DefaultSourceBase, sha256.Sum256(body), body, deadLetterReason(err), "req", -1).Header)
			return
		}
		for i, raw := range events {
			if !json.Valid(raw) {
				t.Fatalf("event %d %q is not valid JSON", i, raw)
			}
			if !bytes.Contains(body, raw) {
				t.Fatalf("event %d %q is not a substring of the input", i, raw)
			}
			ev, err := parseEvent(raw)
			ref, refErr := parseEventReference(raw)
			if !sameErr(err, refErr) || (err == nil && fmt.Sprint(ev) != fmt.Sprint(ref)) {
				t.Fatalf("parseEvent(%q) = %+v, %v; reference %+v, %v", raw, ev, err, ref, refErr)
			}
			if err != nil {
				checkMsgHeaders(t, deadLetterMsg("upvest", DefaultSourceBase, sha256.Sum256(body), raw, deadLetterReason(err), "req", i).Header)
				continue
			}
			m := eventMsg("upvest", DefaultSourceBase, ev)
			if !strings.HasPrefix(m.Subject, "upvest.") || strings.ContainsAny(m.Subject, " \t\r\n*>") {
				t.Fatalf("subject %q is not a valid subject under upvest.", m.Subject)
			}
			if !bytes.Equal(m.Data, raw) {
				t.Fatalf("data %q, want the raw event %q", m.Data, raw)
			}
			checkMsgHeaders(t, m.Header)
		}
	})
}

func checkMsgHeaders(t *testing.T, h map[string][]string) {
	t.Helper()
	for k, vs := range h {
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if v[i] < '!' || v[i] > '~' {
					t.Fatalf("header %s = %q has a byte outside printable ASCII", k, v)
				}
			}
		}
	}
}

// BenchmarkSplitAndHeaders measures turning a 100-event package into its
// messages, without publishing.
func BenchmarkSplitAndHeaders(b *testing.B) {
	body := BenchPackage(100, 0)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		events, err := Split(body)
		if err != nil {
			b.Fatal(err)
		}
		for _, raw := range events {
			ev, err := parseEvent(raw)
			if err != nil {
				b.Fatal(err)
			}
			_ = eventMsg("upvest", DefaultSourceBase, ev)
		}
	}
}

// BenchPackage is a package of n realistic events with ids unique to run.
// It is exported (in a test file) for the external benchmarks.
func BenchPackage(n, run int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"payload":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%08d-0000-4000-8000-%012d","created_at":"2024-05-01T10:00:00.123456Z","type":"ORDER.FILLED","object":{"id":"0f0e0d0c-0b0a-4090-8070-605040302010","user_id":"a1b2c3d4-0000-4000-8000-000000000001","status":"FILLED","side":"BUY","quantity":"1.5","price":"101.25","currency":"EUR"},"webhook_id":"b1f0c9a6-9d38-4a4f-bc44-0c8a3b7f0d11"}`, run, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// splitReference is Split done with encoding/json maps: slower, obviously
// right, the oracle FuzzSplit compares Split with.
func splitReference(body []byte) ([]json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		if !json.Valid(body) {
			return nil, ErrInvalidJSON
		}
		return nil, ErrNoPayload
	}
	payload, ok := top["payload"]
	if !ok || top == nil {
		return nil, ErrNoPayload
	}
	if payload[0] != '[' {
		return nil, ErrPayloadNotArray
	}
	var events []json.RawMessage
	if err := json.Unmarshal(payload, &events); err != nil {
		return nil, err
	}
	return events, nil
}

// parseEventReference is parseEvent done with encoding/json maps.
func parseEventReference(raw json.RawMessage) (event, error) {
	ev := event{raw: raw}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return ev, ErrEventMissingID
	}
	str := func(m map[string]json.RawMessage, k string) string {
		var s string
		if v := m[k]; len(v) > 0 && v[0] == '"' {
			_ = json.Unmarshal(v, &s)
		}
		return s
	}
	ev.id, ev.typ = str(fields, "id"), str(fields, "type")
	if strings.TrimSpace(ev.id) == "" {
		return ev, ErrEventMissingID
	}
	if strings.TrimSpace(ev.typ) == "" {
		return ev, ErrEventMissingType
	}
	ev.createdAt, ev.webhookID = str(fields, "created_at"), str(fields, "webhook_id")
	var obj map[string]json.RawMessage
	if v := fields["object"]; len(v) > 0 && v[0] == '{' && json.Unmarshal(v, &obj) == nil {
		ev.objectID = str(obj, "id")
	}
	return ev, nil
}

// sameErr reports whether got and want are the same sentinel (or both nil).
func sameErr(got, want error) bool { return errors.Is(got, want) && errors.Is(want, got) }
