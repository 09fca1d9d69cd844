package relay

import (
	"encoding/json"
	"errors"
	"strings"
)

// Reasons a validly signed body or event is dead-lettered. Split and
// parseEvent return them; they never reach an HTTP status.
var (
	ErrInvalidJSON      = errors.New("relay: body is not valid JSON")
	ErrNoPayload        = errors.New("relay: body is not an object with a payload")
	ErrPayloadNotArray  = errors.New("relay: payload is not an array")
	ErrEventMissingID   = errors.New("relay: event has no string id")
	ErrEventMissingType = errors.New("relay: event has no string type")
)

// Split returns each element of the package's "payload" array as the exact
// bytes it has in body (sub-slices of body, not copies), without
// re-encoding. A body that is not valid JSON, not an object with a
// "payload" member (matched exactly, case sensitive) or whose payload is
// not an array gives ErrInvalidJSON, ErrNoPayload or ErrPayloadNotArray.
// An empty payload gives no events and no error.
func Split(body []byte) ([]json.RawMessage, error) {
	pp, err := parsePackage(body)
	if err != nil {
		return nil, err
	}
	events := make([]json.RawMessage, len(pp.elems))
	for i := range pp.elems {
		events[i] = pp.elems[i].raw
	}
	return events, nil
}

// event is what the relay reads from one event element; raw is the element
// itself.
type event struct {
	raw       json.RawMessage
	id        string
	typ       string
	createdAt string // "" if missing or not a string
	webhookID string // "" if missing or not a string
	objectID  string // "" if missing or not a string
}

// element is one element of a payload as parsePackage found it: its raw
// bytes and, for an object, where its fields are. parsed.event turns it
// into an event.
type element struct {
	raw      json.RawMessage
	isObject bool
	bad      error // why it is not an event (set by finish); nil for an event
	f        fields
}

// parsePackage reads body in one pass: it validates the whole body as
// encoding/json does and returns the elements of its "payload" array (the
// last "payload" member, if there are several), or one of the errors Split
// documents.
func parsePackage(body []byte) (*parsed, error) { return parsePackageWithin(body, parseLimits{}) }

// parseLimits bound what parsePackageWithin reads; a zero field is no
// bound.
type parseLimits struct {
	elements int // elements of an array read as a payload
	depth    int // nesting of arrays and objects
}

// errParseLimit: a body has more elements or deeper nesting than
// parsePackageWithin was allowed to read.
var errParseLimit = errors.New("relay: body beyond the parse limits")

// parsePackageWithin is parsePackage, except that it stops with
// errParseLimit, whatever else the body holds, once an array it reads as
// a payload has more than lim.elements elements or arrays and objects
// nest deeper than lim.depth: what the parse allocates, and its stack,
// are then bounded by lim, not by the body.
func parsePackageWithin(body []byte, lim parseLimits) (*parsed, error) {
	p := parser{d: body, depthLimit: lim.depth}
	var (
		elems    []element
		isObject bool
		payload  byte // first byte of the last "payload" value; 0 if none
	)
	err := p.document(func() error {
		if p.peek() != '{' {
			return p.value()
		}
		isObject = true
		return p.object(func(raw []byte, decoded string) error {
			if !is(raw, decoded, "payload") {
				return p.value()
			}
			payload = p.peek()
			elems = elems[:0]
			if payload != '[' {
				return p.value()
			}
			return p.array(func() error {
				if lim.elements > 0 && len(elems) == lim.elements {
					return errParseLimit
				}
				elems = append(elems, element{})
				if err := p.event(&elems[len(elems)-1]); err != nil {
					return err
				}
				if len(elems) == 1 {
					elems = roomFor(elems, len(body), p.i, lim.elements)
				}
				return nil
			})
		})
	})
	switch {
	case errors.Is(err, errParseLimit):
		return nil, err
	case err != nil:
		return nil, ErrInvalidJSON
	case !isObject || payload == 0:
		return nil, ErrNoPayload
	case payload != '[':
		return nil, ErrPayloadNotArray
	}
	pp := &parsed{body: body, elems: elems, decoded: p.decoded}
	pp.finish()
	return pp, nil
}

// roomFor returns elems, holding a payload's first element, which ends at
// pos of a body of n bytes, with room for as many elements as the rest of
// the body holds if they are about that size: guessing saves most of the
// appends' copying, and guessing from the first element instead of from
// the body alone keeps the guess close whatever the events' size. It
// guesses at most one element per 256 bytes (Upvest's events take several
// hundred bytes each; a tiny first element must not make a large guess)
// and at most limit (when > 0); beyond, elements are appended.
func roomFor(elems []element, n, pos, limit int) []element {
	want := 1 + (n-pos)/(len(elems[0].raw)+1)
	want = min(want+want/8, max(8, n/256))
	if limit > 0 {
		want = min(want, limit)
	}
	if want <= cap(elems) {
		return elems
	}
	return append(make([]element, 0, want), elems...)
}

// parsed is what parsePackage read: the elements of the payload.
type parsed struct {
	body    []byte
	elems   []element
	decoded []string // texts of fieldDecoded fields
	text    string   // texts of fieldPlain fields (after finish)
}

// parseEvent reads the fields the relay needs from raw, valid JSON (an
// element Split returned). An element that is not an object, or lacks a
// non-blank string id or type, gives ErrEventMissingID or
// ErrEventMissingType.
func parseEvent(raw json.RawMessage) (event, error) {
	p := parser{d: raw}
	var el [1]element
	if err := p.document(func() error { return p.event(&el[0]) }); err != nil {
		return event{raw: raw}, ErrEventMissingID
	}
	pp := &parsed{body: raw, elems: el[:], decoded: p.decoded}
	pp.finish()
	return pp.event(0)
}

// finish makes the text of every plain field with a single copy of their
// bytes (afterwards a plain field's offsets are into pp.text) and records
// which elements are not events.
func (pp *parsed) finish() {
	n := 0
	for i := range pp.elems {
		for _, f := range pp.elems[i].f {
			if f.kind == fieldPlain {
				n += int(f.end - f.off)
			}
		}
	}
	var b strings.Builder
	b.Grow(n)
	for i := range pp.elems {
		for j := range pp.elems[i].f {
			if f := &pp.elems[i].f[j]; f.kind == fieldPlain {
				at := b.Len()
				b.Write(pp.body[f.off:f.end])
				f.off, f.end = int32(at), int32(b.Len())
			}
		}
	}
	pp.text = b.String()
	for i := range pp.elems {
		el := &pp.elems[i]
		switch {
		case !el.isObject || strings.TrimSpace(pp.str(el.f[fID])) == "":
			el.bad = ErrEventMissingID
		case strings.TrimSpace(pp.str(el.f[fType])) == "":
			el.bad = ErrEventMissingType
		}
	}
}

func (pp *parsed) str(f field) string {
	switch f.kind {
	case fieldPlain:
		return pp.text[f.off:f.end]
	case fieldDecoded:
		return pp.decoded[f.off]
	}
	return ""
}

// event returns element i as an event, with the reason it is dead-lettered
// (ErrEventMissingID or ErrEventMissingType) if it is not one.
func (pp *parsed) event(i int) (event, error) {
	el := &pp.elems[i]
	return event{
		raw:       el.raw,
		id:        pp.str(el.f[fID]),
		typ:       pp.str(el.f[fType]),
		createdAt: pp.str(el.f[fCreatedAt]),
		webhookID: pp.str(el.f[fWebhookID]),
		objectID:  pp.str(el.f[fObjectID]),
	}, el.bad
}
