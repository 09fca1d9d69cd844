package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/subjects"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

// wireEvent is an element of a package's payload, in Upvest's field order.
type wireEvent struct {
	ID        string          `json:"id"`
	CreatedAt string          `json:"created_at"`
	Type      string          `json:"type"`
	Object    json.RawMessage `json:"object"`
	WebhookID string          `json:"webhook_id"`
}

// idOffset is where the id starts in an encoded wireEvent: {"id":"
const idOffset = len(`{"id":"`)

// template is the shape of a package: realistic events from the
// emulator's generator, encoded once. Instances differ only in their event
// ids, patched in place, so that making a package costs a copy.
type template struct {
	body    []byte // {"payload":[e1,e2,...]}
	idAt    []int  // offset of each event's id in body
	types   []string
	times   []string
	objects []string // object.id of each event
	raw     [][2]int // each event's bytes in body
}

// newTemplate generates events events; with pad > 0 each event's object
// gets a "notes" string that brings the event to about pad bytes.
func newTemplate(g *emulator.Generator, events, pad int) (*template, error) {
	t := &template{}
	var b bytes.Buffer
	b.WriteString(`{"payload":[`)
	for i, e := range g.Batch(events) {
		obj, err := json.Marshal(e.Object)
		if err != nil {
			return nil, err
		}
		var o struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(obj, &o)
		w := wireEvent{ID: e.ID, CreatedAt: e.CreatedAt.UTC().Format(time.RFC3339Nano), Type: e.Type, Object: obj, WebhookID: webhookID}
		raw, err := json.Marshal(w)
		if err != nil {
			return nil, err
		}
		if n := pad - len(raw) - len(`,"notes":""`); pad > 0 && n > 0 && len(obj) > 2 {
			w.Object = append(append(obj[:len(obj)-1:len(obj)-1], `,"notes":"`+notes(n)+`"`...), '}')
			if raw, err = json.Marshal(w); err != nil {
				return nil, err
			}
		}
		if len(w.ID) != 36 || !bytes.HasPrefix(raw, []byte(`{"id":"`+w.ID)) {
			return nil, fmt.Errorf("generated event id %q is not a UUID at the start of the event", w.ID)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		t.raw = append(t.raw, [2]int{b.Len(), b.Len() + len(raw)})
		t.idAt = append(t.idAt, b.Len()+idOffset)
		b.Write(raw)
		t.types = append(t.types, w.Type)
		t.times = append(t.times, w.CreatedAt)
		t.objects = append(t.objects, o.ID)
	}
	b.WriteString(`]}`)
	t.body = b.Bytes()
	return t, nil
}

func notes(n int) string {
	const words = "settled per instruction of the account holder "
	return strings.Repeat(words, n/len(words)+1)[:n]
}

func (t *template) events() int { return len(t.idAt) }

// serial numbers package instances across the whole invocation, so that
// no two packages share an event id.
var serial atomic.Uint32

// pkg is one package: its body, the messages an ideal relay publishes for
// it (the floor's), and the headers of Upvest's signature.
type pkg struct {
	body   []byte
	msgs   []*nats.Msg
	header http.Header
}

// instance makes a package of t's shape with fresh event ids: the first 8
// hex digits of each id become the instance's serial number. With msgs,
// it also builds the floor's CloudEvent messages (docs/contract.md).
func (t *template) instance(msgs bool) *pkg {
	p := &pkg{body: bytes.Clone(t.body)}
	prefix := fmt.Sprintf("%08x", serial.Add(1))
	for _, at := range t.idAt {
		copy(p.body[at:at+8], prefix)
	}
	if !msgs {
		return p
	}
	source := relay.DefaultSourceBase + "/webhooks/" + webhookID
	p.msgs = make([]*nats.Msg, len(t.idAt))
	for i, at := range t.idAt {
		id := string(p.body[at : at+36])
		h := nats.Header{
			relay.HeaderSpecVersion:     {"1.0"},
			relay.HeaderID:              {id},
			relay.HeaderSource:          {source},
			relay.HeaderType:            {subjects.EventType(t.types[i])},
			relay.HeaderTime:            {t.times[i]},
			relay.HeaderSubject:         {t.objects[i]},
			relay.HeaderDataContentType: {"application/json"},
			relay.HeaderContentType:     {"application/json"},
			relay.HeaderMsgID:           {id},
		}
		p.msgs[i] = &nats.Msg{Subject: subjects.For(subjectPrefix, t.types[i]), Header: h, Data: p.body[t.raw[i][0]:t.raw[i][1]]}
	}
	return p
}

// sign signs p as Upvest signs a delivery to the webhook path; the
// signature does not cover the host, so any relay address accepts it.
func sign(emu *emulator.Server, p *pkg) error {
	req, err := http.NewRequest(http.MethodPost, "http://relay"+webhookPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := emu.SignDelivery(req, p.body); err != nil {
		return err
	}
	p.header = req.Header
	return nil
}
