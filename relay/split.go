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
// bytes and, for an object, where its fields are. materialize turns it into
// an event.
type element struct {
	raw      json.RawMessage
	isObject bool
	f        fields
}

// parsePackage reads body in one pass: it validates the whole body as
// encoding/json does and returns the elements of its "payload" array (the
// last "payload" member, if there are several), or one of the errors Split
// documents.
func parsePackage(body []byte) (*parsed, error) {
	p := parser{d: body}
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
			if elems == nil {
				// Upvest's events take several hundred bytes each;
				// guessing from the size saves most of the appends'
				// copying.
				elems = make([]element, 0, max(8, len(body)/512))
			}
			return p.array(func() error {
				elems = append(elems, element{})
				return p.event(&elems[len(elems)-1])
			})
		})
	})
	switch {
	case err != nil:
		return nil, ErrInvalidJSON
	case !isObject || payload == 0:
		return nil, ErrNoPayload
	case payload != '[':
		return nil, ErrPayloadNotArray
	}
	return &parsed{body: body, elems: elems, decoded: p.decoded}, nil
}

// parsed is what parsePackage read: the elements of the payload, whose
// fields point into body or decoded.
type parsed struct {
	body    []byte
	elems   []element
	decoded []string
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
	events, errs := (&parsed{body: raw, elems: el[:], decoded: p.decoded}).materialize()
	if errs != nil {
		return events[0], errs[0]
	}
	return events[0], nil
}

// materialize makes the events of the elements and returns each
// element's error (ErrEventMissingID or ErrEventMissingType), all nil, as
// errs == nil, when every element is an event. The strings of all plain
// fields come from a single copy of their bytes.
func (pp *parsed) materialize() (events []event, errs []error) {
	body, elems := pp.body, pp.elems
	n := 0
	for i := range elems {
		for _, f := range elems[i].f {
			if f.kind == fieldPlain {
				n += int(f.end - f.off)
			}
		}
	}
	buf := make([]byte, 0, n)
	for i := range elems {
		for _, f := range elems[i].f {
			if f.kind == fieldPlain {
				buf = append(buf, body[f.off:f.end]...)
			}
		}
	}
	all := string(buf)
	at := 0
	text := func(f field) string {
		switch f.kind {
		case fieldPlain:
			s := all[at : at+int(f.end-f.off)]
			at += len(s)
			return s
		case fieldDecoded:
			return pp.decoded[f.off]
		}
		return ""
	}
	events = make([]event, len(elems))
	for i := range elems {
		el := &elems[i]
		ev := &events[i]
		// In field order, as the copy above.
		*ev = event{raw: el.raw}
		ev.id = text(el.f[fID])
		ev.typ = text(el.f[fType])
		ev.createdAt = text(el.f[fCreatedAt])
		ev.webhookID = text(el.f[fWebhookID])
		ev.objectID = text(el.f[fObjectID])
		var err error
		switch {
		case !el.isObject || strings.TrimSpace(ev.id) == "":
			err = ErrEventMissingID
		case strings.TrimSpace(ev.typ) == "":
			err = ErrEventMissingType
		}
		if err != nil {
			if errs == nil {
				errs = make([]error, len(elems))
			}
			errs[i] = err
		}
	}
	return events, errs
}
