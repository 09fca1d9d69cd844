package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/upvest-relay/upvest-relay/subjects"
)

// Header names. CloudEvents attributes are lower case, as the CloudEvents
// NATS binding and its Go SDK expect (NATS headers are case sensitive).
const (
	HeaderSpecVersion     = "ce-specversion"
	HeaderID              = "ce-id"
	HeaderSource          = "ce-source"
	HeaderType            = "ce-type"
	HeaderTime            = "ce-time"
	HeaderSubject         = "ce-subject"
	HeaderDataContentType = "ce-datacontenttype"
	HeaderContentType     = "content-type"
	// HeaderMsgID is JetStream's deduplication header.
	HeaderMsgID = nats.MsgIdHdr

	// HeaderDeadLetterReason says why a message was dead-lettered: one of
	// the DeadLetter* reasons.
	HeaderDeadLetterReason = "Relay-Deadletter-Reason"
	// HeaderDeadLetterIndex is the position of a dead-lettered event in
	// its package's payload (absent when the whole body is dead-lettered).
	HeaderDeadLetterIndex = "Relay-Deadletter-Index"
	// HeaderRequestID is the request id of the package a dead letter came
	// from, the X-Request-Id of its answer.
	HeaderRequestID = "Relay-Request-Id"

	// DeadLetterType is the CloudEvent type of dead letters.
	DeadLetterType = "com.github.upvest-relay.deadletter"

	specVersion     = "1.0"
	applicationJSON = "application/json"
	octetStream     = "application/octet-stream"
)

// Dead-letter reasons, the values of HeaderDeadLetterReason.
const (
	DeadLetterInvalidJSON      = "invalid_json"
	DeadLetterNoPayload        = "no_payload"
	DeadLetterPayloadNotArray  = "payload_not_array"
	DeadLetterEventMissingID   = "event_missing_id"
	DeadLetterEventMissingType = "event_missing_type"
)

// deadLetterReason maps a Split or parseEvent error to its reason.
func deadLetterReason(err error) string {
	switch {
	case errors.Is(err, ErrInvalidJSON):
		return DeadLetterInvalidJSON
	case errors.Is(err, ErrNoPayload):
		return DeadLetterNoPayload
	case errors.Is(err, ErrPayloadNotArray):
		return DeadLetterPayloadNotArray
	case errors.Is(err, ErrEventMissingType):
		return DeadLetterEventMissingType
	default:
		return DeadLetterEventMissingID
	}
}

// eventMsg builds the binary-mode CloudEvent message for ev, published
// under prefix, with source <sourceBase>/webhooks/<webhook_id>.
func eventMsg(prefix, sourceBase string, ev event) *nats.Msg {
	id := headerValue(ev.id)
	// One backing array for all header values: one allocation, not ten.
	vals := [...]string{
		specVersion,
		id,
		headerValue(sourceBase + "/webhooks/" + ev.webhookID),
		headerValue(subjects.EventType(ev.typ)),
		applicationJSON,
		"", // time
		"", // subject
	}
	h := make(nats.Header, 10)
	h[HeaderSpecVersion] = vals[0:1:1]
	h[HeaderID] = vals[1:2:2]
	h[HeaderSource] = vals[2:3:3]
	h[HeaderType] = vals[3:4:4]
	h[HeaderDataContentType] = vals[4:5:5]
	h[HeaderContentType] = vals[4:5:5]
	h[HeaderMsgID] = vals[1:2:2]
	if ev.createdAt != "" {
		if _, err := time.Parse(time.RFC3339Nano, ev.createdAt); err == nil {
			vals[5] = headerValue(ev.createdAt)
			h[HeaderTime] = vals[5:6:6]
		}
	}
	if strings.TrimSpace(ev.objectID) != "" {
		vals[6] = headerValue(ev.objectID)
		h[HeaderSubject] = vals[6:7:7]
	}
	return &nats.Msg{Subject: subjects.For(prefix, ev.typ), Header: h, Data: ev.raw}
}

// deadLetterMsg builds the dead letter for raw (a whole body when index
// is negative, else the index-th event of the payload) of the package
// whose body digests to pkg. It is a binary-mode CloudEvent whose id, and
// Nats-Msg-Id, is deadLetterID(pkg, index): a retried package (the same
// bytes) does not store it twice, while the same bad element in another
// package is a dead letter of its own.
func deadLetterMsg(prefix, sourceBase string, pkg packageDigest, raw []byte, reason, requestID string, index int) *nats.Msg {
	id := deadLetterID(pkg, index)
	contentType := applicationJSON
	if reason == DeadLetterInvalidJSON {
		contentType = octetStream
	}
	h := make(nats.Header, 11)
	h[HeaderSpecVersion] = []string{specVersion}
	h[HeaderID] = []string{id}
	h[HeaderSource] = []string{headerValue(sourceBase + "/webhooks")}
	h[HeaderType] = []string{DeadLetterType}
	h[HeaderDataContentType] = []string{contentType}
	h[HeaderContentType] = []string{contentType}
	h[HeaderMsgID] = []string{id}
	h[HeaderDeadLetterReason] = []string{reason}
	if index >= 0 {
		h[HeaderDeadLetterIndex] = []string{strconv.Itoa(index)}
	}
	if requestID != "" {
		h[HeaderRequestID] = []string{headerValue(requestID)}
	}
	return &nats.Msg{Subject: subjects.DeadLetter(prefix), Header: h, Data: raw}
}

// packageDigest is the SHA-256 of a package's whole body.
type packageDigest [sha256.Size]byte

// deadLetterID is "dl-<hex sha256 of the package body>" for a body that is
// not a package, and "dl-<hex sha256 of the package body>-<index>" for the
// index-th element of its payload.
func deadLetterID(pkg packageDigest, index int) string {
	id := "dl-" + hex.EncodeToString(pkg[:])
	if index >= 0 {
		id += "-" + strconv.Itoa(index)
	}
	return id
}

// headerValue percent-encodes s as the CloudEvents NATS (and HTTP) binding
// requires for header values: every byte of the UTF-8 encoding of a
// character outside printable ASCII (U+0021..U+007E), and space, '"' and
// '%', becomes %XX with upper-case hex. The result is printable ASCII.
func headerValue(s string) string {
	i := 0
	for i < len(s) && !mustEncode(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*(len(s)-i))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if mustEncode(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0x0f])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func mustEncode(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '%'
}
