package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
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
	return newMsgBuilder(prefix, sourceBase, newTypeCache(prefix)).event(ev)
}

// Positions of the header values in msgBuilder.vals.
const (
	vSpecVersion = iota
	vID          // also Nats-Msg-Id
	vSource
	vType
	vContentType // also content-type
	vTime
	vSubject
	numVals
)

// msgBuilder builds the messages of one package's events into one reused
// nats.Msg, so that an event costs no allocation: the header map is made
// once, its values are slices of vals that each event overwrites, the
// ce-source of the package's webhook is computed once, and the subject,
// ce-type and metric family of each event type come from the handler's
// typeCache. A message it returns is valid until the next call; publishing
// copies it onto the connection. A header set on msg.Header that event
// does not write (e.g. trace context for the whole package) is carried by
// every event message.
type msgBuilder struct {
	prefix, sourceBase string
	types              *typeCache
	msg                nats.Msg
	vals               [numVals]string
	last               *typeInfo
	webhookID, source  string // the last webhook seen and its ce-source
	haveSource         bool
}

func newMsgBuilder(prefix, sourceBase string, types *typeCache) *msgBuilder {
	b := &msgBuilder{prefix: prefix, sourceBase: sourceBase, types: types}
	b.vals[vSpecVersion] = specVersion
	b.vals[vContentType] = applicationJSON
	h := make(nats.Header, numVals+2)
	h[HeaderSpecVersion] = b.val(vSpecVersion)
	h[HeaderID] = b.val(vID)
	h[HeaderSource] = b.val(vSource)
	h[HeaderType] = b.val(vType)
	h[HeaderDataContentType] = b.val(vContentType)
	h[HeaderContentType] = b.val(vContentType)
	h[HeaderMsgID] = b.val(vID)
	b.msg.Header = h
	return b
}

// val is a one-element slice of vals[i], as a header value.
func (b *msgBuilder) val(i int) []string { return b.vals[i : i+1 : i+1] }

// event returns the message of ev.
func (b *msgBuilder) event(ev event) *nats.Msg {
	t := b.typeOf(ev.typ)
	b.vals[vID] = headerValue(ev.id)
	b.vals[vSource] = b.sourceOf(ev.webhookID)
	b.vals[vType] = t.ceType
	h := b.msg.Header
	if ev.createdAt != "" && validTime(ev.createdAt) {
		b.vals[vTime] = headerValue(ev.createdAt)
		h[HeaderTime] = b.val(vTime)
	} else {
		delete(h, HeaderTime)
	}
	if strings.TrimSpace(ev.objectID) != "" {
		b.vals[vSubject] = headerValue(ev.objectID)
		h[HeaderSubject] = b.val(vSubject)
	} else {
		delete(h, HeaderSubject)
	}
	b.msg.Subject = t.subject
	b.msg.Data = ev.raw
	return &b.msg
}

// typeOf returns what typ maps to.
func (b *msgBuilder) typeOf(typ string) *typeInfo {
	if b.last == nil || b.last.typ != typ {
		b.last = b.types.get(typ)
	}
	return b.last
}

// typeInfo is what an event type maps to.
type typeInfo struct {
	typ, subject, ceType, family string
}

// maxCachedTypes bounds a typeCache: Upvest has a few hundred event types.
const maxCachedTypes = 4096

// typeCache maps event types to their subject, ce-type and metric family
// for every package a handler stores, each computed once; types past
// maxCachedTypes are computed every time.
type typeCache struct {
	prefix string
	mu     sync.RWMutex
	m      map[string]*typeInfo
}

func newTypeCache(prefix string) *typeCache {
	return &typeCache{prefix: prefix, m: make(map[string]*typeInfo)}
}

func (c *typeCache) get(typ string) *typeInfo {
	c.mu.RLock()
	t := c.m[typ]
	c.mu.RUnlock()
	if t != nil {
		return t
	}
	// typ points into a package's text: a copy keeps the cache from
	// holding on to the package.
	typ = strings.Clone(typ)
	t = &typeInfo{
		typ:     typ,
		subject: subjects.For(c.prefix, typ),
		ceType:  headerValue(subjects.EventType(typ)),
		family:  familyLabel(subjects.Family(typ)),
	}
	c.mu.Lock()
	if len(c.m) < maxCachedTypes {
		c.m[typ] = t
	}
	c.mu.Unlock()
	return t
}

// sourceOf returns the ce-source of events of webhookID. A package comes
// from one webhook, so one is remembered.
func (b *msgBuilder) sourceOf(webhookID string) string {
	if !b.haveSource || b.webhookID != webhookID {
		b.webhookID, b.source, b.haveSource = webhookID, headerValue(b.sourceBase+"/webhooks/"+webhookID), true
	}
	return b.source
}

// validTime reports whether s is an RFC 3339 time, as ce-time must be.
func validTime(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
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
