package relay

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Redrive returns the messages the relay publishes today for the data of a
// dead letter: data is a whole request body when index is negative (a
// dead letter without the Relay-Deadletter-Index header), else the
// index-th element of a package's payload. The messages are exactly those
// the handler publishes for live events, in payload order: subject
// <prefix>.<family>.<state>, the CloudEvent headers with source
// <sourceBase>/webhooks/<webhook_id>, Nats-Msg-Id = event id, and the
// element's bytes as data.
//
// When data still does not parse, err says why and wraps the reason
// (ErrInvalidJSON, ErrNoPayload, ErrPayloadNotArray, ErrEventMissingID,
// ErrEventMissingType). When a body parses but some of its elements do not,
// msgs holds the events that do and err joins one error per failing
// element, each naming its index and wrapping its reason.
//
// Redrive is pure: it neither publishes nor needs the signature the data
// was verified with on arrival.
func Redrive(prefix, sourceBase string, data []byte, index int) (msgs []*nats.Msg, err error) {
	if index >= 0 {
		if !json.Valid(data) {
			return nil, ErrInvalidJSON
		}
		ev, err := parseEvent(data)
		if err != nil {
			return nil, err
		}
		return []*nats.Msg{eventMsg(prefix, sourceBase, ev)}, nil
	}
	elements, err := Split(data)
	if err != nil {
		return nil, err
	}
	var failed []error
	for i, raw := range elements {
		ev, err := parseEvent(raw)
		if err != nil {
			failed = append(failed, fmt.Errorf("payload element %d: %w", i, err))
			continue
		}
		msgs = append(msgs, eventMsg(prefix, sourceBase, ev))
	}
	return msgs, errors.Join(failed...)
}
