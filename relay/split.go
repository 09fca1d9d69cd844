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
	if !json.Valid(body) {
		return nil, ErrInvalidJSON
	}
	var payload []byte
	for name, value := range members(body) {
		if nameIs(name, "payload") {
			payload = value
		}
	}
	switch {
	case payload == nil:
		return nil, ErrNoPayload
	case payload[0] != '[':
		return nil, ErrPayloadNotArray
	}
	events := make([]json.RawMessage, 0, 8)
	for raw := range elements(payload) {
		events = append(events, raw)
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

// parseEvent reads the fields the relay needs from raw, valid JSON (an
// element Split returned). An element that is not an object, or lacks a
// non-blank string id or type, gives ErrEventMissingID or
// ErrEventMissingType.
func parseEvent(raw json.RawMessage) (event, error) {
	ev := event{raw: raw}
	if !isObject(raw) {
		return ev, ErrEventMissingID
	}
	var object []byte
	for name, value := range members(raw) {
		switch {
		case nameIs(name, "id"):
			ev.id, _ = stringValue(value)
		case nameIs(name, "type"):
			ev.typ, _ = stringValue(value)
		case nameIs(name, "created_at"):
			ev.createdAt, _ = stringValue(value)
		case nameIs(name, "webhook_id"):
			ev.webhookID, _ = stringValue(value)
		case nameIs(name, "object"):
			object = value
		}
	}
	if strings.TrimSpace(ev.id) == "" {
		return ev, ErrEventMissingID
	}
	if strings.TrimSpace(ev.typ) == "" {
		return ev, ErrEventMissingType
	}
	for name, value := range members(object) {
		if nameIs(name, "id") {
			ev.objectID, _ = stringValue(value)
		}
	}
	return ev, nil
}
