package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// parseSeeds are packages that exercise the parser: Upvest's shape, every
// JSON construct, escapes in names and values, invalid UTF-8, duplicate
// members, numbers at the edges of the grammar and nesting at
// encoding/json's limit.
func parseSeeds() []string {
	seeds := []string{
		`{"payload":[{"id":"a","created_at":"2024-05-01T10:00:00Z","type":"ORDER.FILLED","object":{"id":"o"},"webhook_id":"w"}]}`,
		`{"payload":[{"id":"a","type":"USER_CHECK.PASSED"},{"id":"b","type":"X"}, {"type":"NOID.X"}, 1]}`,
		`{"payload":[]}`, `{"payload":null}`, `{"payload":{}}`, `{"PAYLOAD":[]}`, `[{"id":"a"}]`,
		`{"payload":[{"id":"é 😀 \"%","type":"A B.C*D>E","object":{"id":"\u0000\n"}}]}`,
		`{"payload":[{"id":"a","type":"..."}],"payload":[2]}`,
		`{"payload":[1],"payload":{}}`,
		`{"payload":[`, "\xff\xfe", ``, ` `, `{}`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{"a":1 "b":2}`,
		`{"payload":[{"i\u0064":"esc","typ\u0065":"A.B","object":{"\u0069d":"o\"1"}}], "x":[{"]":"}"}]}`,
		`{"payload":[{"id":"a","id":5,"type":"A.B"},{"id":"\ud800","type":"\u00e9.\u0000"}]}`,
		`{"payload":[{"id":"a","type":"A.B","object":{"id":"o"},"object":"x"},{"id":"b","type":"A.B","object":{"id":1,"id":"p"}}]}`,
		` {"payload" : [ 1 , -2.5e3 , true , false , null , "a,b]" , {"}":"{"} ] } `,
		"{\"payload\":[{\"id\":\"\xff\",\"type\":\"A\",\"webhook_id\":\"w\xc3\"}]}",
		"{\"payload\":[{\"id\":\"a\",\"type\":\"A\",\"created_at\":\"2024-05-01T10:00:00+02:00\",\"ob\xffject\":{\"id\":\"x\"}}]}",
		`{"payload":[0,-0,1.5,1e9,1E+9,-1e-9,0.0e0]}`,
		`{"payload":[01]}`, `{"payload":[1.]}`, `{"payload":[.5]}`, `{"payload":[1e]}`, `{"payload":[+1]}`, `{"payload":[-]}`,
		`{"payload":[tru]}`, `{"payload":[nul]}`, `{"payload":[truex]}`,
		`{"payload":["\x"]}`, `{"payload":["\u12"]}`, `{"payload":["\u12G4"]}`, "{\"payload\":[\"\t\"]}", "{\"payload\":[\"\x7f\"]}",
		`{"payload":[{"id":"a","type":"T"}]}x`, `{"payload":[{"id":"a","type":"T"}]}{}`,
		"\ufeff{\"payload\":[]}",
		`{"payload":[{"id":" ","type":"T"},{"id":"\u00a0","type":"T"},{"id":"a","type":"\t"}]}`,
	}
	deep := func(n int) string {
		return `{"payload":[{"id":"d","type":"T","object":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}]}`
	}
	// The top object, the payload and the event are 3 levels.
	seeds = append(seeds, deep(maxDepth-3), deep(maxDepth-2))
	for _, c := range []string{
		`{"id":"6b8a4c1e","created_at":"2024-05-01T10:00:00.123456Z","type":"ORDER.FILLED","object":{"id":"0f0e","status":"FILLED"},"webhook_id":"b1f0"}`,
		`{"id":"evt 42 \"quoted\" 100%","created_at":"2024-05-01T10:00:03Z","type":"USER.UPDATED","object":{"id":"Müller & Söhne € 😀","name":"J\u00fcrgen"},"webhook_id":"wh-ü"}`,
		`{"id":"9e1d","created_at":"yesterday","type":"POSITION.UPDATED","object":{"id":"pos-1"},"webhook_id":"b1f0"}`,
	} {
		seeds = append(seeds, `{"payload":[`+c+`,`+c+`]}`)
	}
	return append(seeds, string(BenchPackage(3, 0)))
}

func TestParseSeedsAgreeWithEncodingJSON(t *testing.T) {
	for _, s := range parseSeeds() {
		checkParse(t, []byte(s))
	}
}

// FuzzParsePackage is the differential test of the one-pass parser against
// encoding/json: the body is valid exactly when json.Valid says so, and the
// elements and every field the relay reads agree with what encoding/json
// decodes. It also checks that messages built one after another into the
// reused message of a package are exactly the messages built alone.
func FuzzParsePackage(f *testing.F) {
	for _, s := range parseSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(checkParse)
}

func checkParse(t *testing.T, body []byte) {
	pp, err := parsePackage(body)
	var elems []element
	if pp != nil {
		elems = pp.elems
	}
	if valid := json.Valid(body); valid != !errors.Is(err, ErrInvalidJSON) {
		t.Fatalf("parsePackage(%q) error = %v, json.Valid = %v", body, err, valid)
	}
	refRaws, refErr := splitReference(body)
	if !sameErr(err, refErr) || len(elems) != len(refRaws) {
		t.Fatalf("parsePackage(%q) = %d elements, %v; encoding/json: %d, %v", body, len(elems), err, len(refRaws), refErr)
	}
	checkLimit(t, body, len(elems), err)
	if err != nil {
		return
	}
	b := newMsgBuilder("upvest", DefaultSourceBase, newTypeCache("upvest"))
	for i := range elems {
		if !bytes.Equal(elems[i].raw, refRaws[i]) {
			t.Fatalf("element %d = %q, encoding/json %q", i, elems[i].raw, refRaws[i])
		}
		ref, refErr := fieldsReference(refRaws[i])
		ev, evErr := pp.event(i)
		if !sameErr(evErr, refErr) || !reflect.DeepEqual(ev, ref) {
			t.Fatalf("element %d %q: %+v, %v; encoding/json: %+v, %v", i, refRaws[i], ev, evErr, ref, refErr)
		}
		if evErr != nil {
			continue
		}
		got, want := b.event(ev), eventMsg("upvest", DefaultSourceBase, ev)
		if got.Subject != want.Subject || !bytes.Equal(got.Data, want.Data) || fmt.Sprint(got.Header) != fmt.Sprint(want.Header) {
			t.Fatalf("element %d: reused message %s %v, alone %s %v", i, got.Subject, got.Header, want.Subject, want.Header)
		}
		checkMsgHeaders(t, got.Header)
	}
}

// checkLimit: parsePackageWithin gives what parsePackage gave (n
// elements, or err) or errParseLimit: always when the payload it returns
// has more elements than allowed or the body nests deeper, never when
// neither holds for a body that parses.
func checkLimit(t *testing.T, body []byte, n int, err error) {
	t.Helper()
	depth := nesting(body)
	for _, lim := range []parseLimits{
		{elements: 1}, {elements: n}, {elements: n + 1},
		{depth: 1}, {depth: 2}, {depth: max(1, depth-1)}, {depth: depth}, {elements: n, depth: depth},
	} {
		pp, lerr := parsePackageWithin(body, lim)
		switch {
		case errors.Is(lerr, errParseLimit):
			if pp != nil {
				t.Fatalf("parsePackageWithin(%q, %+v): errParseLimit with a result", body, lim)
			}
			if err == nil && n <= lim.elements && depth <= lim.depth {
				t.Fatalf("parsePackageWithin(%q, %+v) = errParseLimit; %d elements, %d deep", body, lim, n, depth)
			}
		case lerr != nil || err != nil:
			if !sameErr(lerr, err) {
				t.Fatalf("parsePackageWithin(%q, %+v) = %v, parsePackage: %v", body, lim, lerr, err)
			}
		case len(pp.elems) != n:
			t.Fatalf("parsePackageWithin(%q, %+v) = %d elements, parsePackage: %d", body, lim, len(pp.elems), n)
		case lim.elements > 0 && n > lim.elements, lim.depth > 0 && depth > lim.depth:
			t.Fatalf("parsePackageWithin(%q, %+v) read %d elements %d deep", body, lim, n, depth)
		}
	}
}

// nesting is how deep arrays and objects nest in body (0 for a scalar or
// invalid JSON).
func nesting(body []byte) int {
	if !json.Valid(body) {
		return 0
	}
	d := json.NewDecoder(bytes.NewReader(body))
	depth, deepest := 0, 0
	for {
		tok, err := d.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			depth++
			deepest = max(deepest, depth)
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

// fieldsReference reads every field the relay uses from the element raw
// with encoding/json maps, and the element's error.
func fieldsReference(raw json.RawMessage) (event, error) {
	ev := event{raw: raw}
	str := func(m map[string]json.RawMessage, k string) string {
		var s string
		if v := m[k]; len(v) > 0 && v[0] == '"' {
			if err := json.Unmarshal(v, &s); err != nil {
				panic(err)
			}
		}
		return s
	}
	var fields map[string]json.RawMessage
	isObject := len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &fields) == nil
	ev.id, ev.typ = str(fields, "id"), str(fields, "type")
	ev.createdAt, ev.webhookID = str(fields, "created_at"), str(fields, "webhook_id")
	var obj map[string]json.RawMessage
	if v := fields["object"]; len(v) > 0 && v[0] == '{' && json.Unmarshal(v, &obj) == nil {
		ev.objectID = str(obj, "id")
	}
	switch {
	case !isObject || strings.TrimSpace(ev.id) == "":
		return ev, ErrEventMissingID
	case strings.TrimSpace(ev.typ) == "":
		return ev, ErrEventMissingType
	}
	return ev, nil
}

func TestNeedsLook(t *testing.T) {
	for c := range 256 {
		for pos := range 8 {
			var b [8]byte
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(c)
			x := uint64(0)
			for i := 7; i >= 0; i-- {
				x = x<<8 | uint64(b[i])
			}
			if got, want := needsLook(x), strClass[c] != 0; got != want {
				t.Errorf("needsLook(byte %#x at %d) = %v, want %v", c, pos, got, want)
			}
		}
	}
}
