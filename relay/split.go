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
// bytes it has in body, without re-encoding. A body that is not valid
// JSON, not an object with a "payload" member (matched exactly, case
// sensitive) or whose payload is not an array gives ErrInvalidJSON,
// ErrNoPayload or ErrPayloadNotArray. An empty payload gives no events and
// no error.
func Split(body []byte) ([]json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || !json.Valid(body) {
			return nil, ErrInvalidJSON
		}
		return nil, ErrNoPayload
	}
	payload, ok := top["payload"]
	if !ok {
		return nil, ErrNoPayload
	}
	if len(payload) == 0 || payload[0] != '[' {
		return nil, ErrPayloadNotArray
	}
	var events []json.RawMessage
	if err := json.Unmarshal(payload, &events); err != nil {
		return nil, ErrPayloadNotArray // unreachable for valid JSON
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

// parseEvent reads the fields the relay needs from raw. An element that
// is not an object, or lacks a non-blank string id or type, gives
// ErrEventMissingID or ErrEventMissingType.
func parseEvent(raw json.RawMessage) (event, error) {
	ev := event{raw: raw}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return ev, ErrEventMissingID
	}
	ev.id = stringField(fields, "id")
	if strings.TrimSpace(ev.id) == "" {
		return ev, ErrEventMissingID
	}
	ev.typ = stringField(fields, "type")
	if strings.TrimSpace(ev.typ) == "" {
		return ev, ErrEventMissingType
	}
	ev.createdAt = stringField(fields, "created_at")
	ev.webhookID = stringField(fields, "webhook_id")
	if obj := fields["object"]; len(obj) > 0 && obj[0] == '{' {
		var objFields map[string]json.RawMessage
		if json.Unmarshal(obj, &objFields) == nil {
			ev.objectID = stringField(objFields, "id")
		}
	}
	return ev, nil
}

// stringField returns fields[key] if it is a JSON string, else "".
func stringField(fields map[string]json.RawMessage, key string) string {
	v := fields[key]
	if len(v) == 0 || v[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}
