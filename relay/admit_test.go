package relay_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
	"github.com/upvest-relay/upvest-relay/verify"
)

// realVerifier returns the emulator (Upvest's signer) and a verifier over
// its keys.
func realVerifier(t *testing.T) (*emulator.Server, *verify.Verifier) {
	t.Helper()
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	jwks, err := emu.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := verify.ParseKeys(jwks)
	if err != nil {
		t.Fatal(err)
	}
	v, err := verify.New(keys)
	if err != nil {
		t.Fatal(err)
	}
	return emu, v
}

// signedRequest is body signed as Upvest signs a delivery.
func signedRequest(t *testing.T, emu *emulator.Server, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := emu.SignDelivery(req, body); err != nil {
		t.Fatal(err)
	}
	return req
}

// head is the raw HTTP/1.1 request head of req with the given
// Content-Length.
func head(req *http.Request, contentLength int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\n", req.URL.Path, req.URL.Host)
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", contentLength)
	return b.String()
}

// TestFloodOfUnverifiableRequests: 200 connections that cannot prove they
// come from Upvest — unsigned heads announcing a body they never send, and
// replayed, validly signed heads that send half their body and stall —
// leave eight concurrent valid deliveries answered 200 with only eight
// publishing slots (the flood holds none of them), and
// the unsigned ones are answered 401 without their body being waited for.
func TestFloodOfUnverifiableRequests(t *testing.T) {
	emu, v := realVerifier(t)
	f := newFixture(t, v, relay.WithMaxInFlight(8), relay.WithBodyTimeout(time.Minute))
	url := f.http.URL + webhookPath
	addr := strings.TrimPrefix(f.http.URL, "http://")

	replayed := pkg(event("r1", "ORDER.FILLED"), event("r2", "ORDER.NEW"))
	replayHead := head(signedRequest(t, emu, url, replayed), len(replayed))

	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	unsignedAnswers := make(chan int, 100)
	for i := range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", webhookPath, addr); err != nil {
				t.Fatal(err)
			}
			go func() {
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					unsignedAnswers <- 0
					return
				}
				resp.Body.Close()
				unsignedAnswers <- resp.StatusCode
			}()
			continue
		}
		if _, err := fmt.Fprint(c, replayHead); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(replayed[:len(replayed)/2]); err != nil {
			t.Fatal(err)
		}
	}

	// Valid deliveries, several at once, while the flood holds.
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			body := pkg(event(fmt.Sprintf("v%d", i), "ORDER.FILLED"))
			resp, err := client.Do(signedRequest(t, emu, url, body))
			if err != nil {
				t.Errorf("valid delivery %d during the flood: %v", i, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("valid delivery %d during the flood: %d, want 200", i, resp.StatusCode)
			}
		})
	}
	wg.Wait()

	for range 100 {
		if got := <-unsignedAnswers; got != http.StatusUnauthorized {
			t.Fatalf("unsigned head with no body: answered %d, want 401 at once", got)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > 256<<20 {
		t.Errorf("heap in use %d MiB during the flood, want ≤ 256 MiB", ms.HeapInuse>>20)
	}
	if got := len(f.stored()); got != 8 {
		t.Errorf("stored %d messages, want the 8 valid events only", got)
	}
}

// tinyElements is a package whose payload is n elements "0": valid JSON,
// about two bytes per element, no event in it.
func tinyElements(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"payload":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('0')
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// TestForgedBodyOfTinyElementsIsNotParsedWhole: a request whose head and
// digest are in order but whose signature is wrong gets 401, and its body
// is not parsed whole meanwhile: a body of two million one-byte elements
// would otherwise make the parse allocate hundreds of megabytes of element
// records, many times the body, before the signature failed.
func TestForgedBodyOfTinyElementsIsNotParsedWhole(t *testing.T) {
	emu, v := realVerifier(t)
	f := newFixture(t, v)
	body := tinyElements(2 << 20)
	req := signedRequest(t, emu, f.http.URL+webhookPath, body)
	// A covered header changed after signing: the signature no longer
	// holds, while the digest still matches the body.
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := send(t, req)
	runtime.ReadMemStats(&after)
	if p := decodeProblem(t, r); r.status != http.StatusUnauthorized || p.Type != "urn:upvest-relay:problem:bad_signature" {
		t.Fatalf("forged request: %d %+v, want 401 bad_signature", r.status, p)
	}
	// The body's buffer and a bounded parse are a few times its size
	// (more under the race detector, and other tests' goroutines allocate
	// meanwhile); parsing it whole took 1.4 GB, 350 times its size.
	alloc, limit := after.TotalAlloc-before.TotalAlloc, uint64(16*len(body))
	if alloc > limit {
		t.Errorf("serving a forged %d-byte body allocated %d bytes, want at most %d", len(body), alloc, limit)
	}
	t.Logf("serving a forged %d-byte body allocated %d bytes", len(body), alloc)
}

// TestSignedPackageOfTinyElements: a validly signed package with more
// elements than are parsed before the signature holds is parsed whole
// once it does: every element is dead-lettered, none lost.
func TestSignedPackageOfTinyElements(t *testing.T) {
	emu, v := realVerifier(t)
	f := newFixture(t, v)
	const n = 3000
	r := send(t, signedRequest(t, emu, f.http.URL+webhookPath, tinyElements(n)))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if s := decodeSummary(t, r); s.Events != n || s.Deadlettered != n || s.Published != 0 {
		t.Errorf("summary %+v, want %d events, all dead-lettered", s, n)
	}
	if got := len(f.stored()); got != n {
		t.Errorf("stream holds %d messages, want %d dead letters", got, n)
	}
}

// TestSignedDeepPackage: a validly signed package nesting deeper than is
// parsed before the signature holds is parsed whole once it does, and its
// event stored.
func TestSignedDeepPackage(t *testing.T) {
	emu, v := realVerifier(t)
	f := newFixture(t, v)
	const deep = 200
	ev := strings.Replace(event("deep-1", "ORDER.FILLED"), `"amount"`,
		`"nested":`+strings.Repeat("[", deep)+strings.Repeat("]", deep)+`, "amount"`, 1)
	r := send(t, signedRequest(t, emu, f.http.URL+webhookPath, pkg(ev)))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if s := decodeSummary(t, r); s.Events != 1 || s.Published != 1 {
		t.Errorf("summary %+v, want the one event published", s)
	}
}

// TestForgedDeepBodyIsNotParsedWhole: a forged request (digest in order,
// signature wrong) whose body nests arrays ten thousand deep gets 401
// without the parse growing a stack for that depth: parsed whole, its
// 20 KB take a megabyte of stack, which the goroutine keeps (here, with
// no collection to shrink it, while it stays blocked).
func TestForgedDeepBodyIsNotParsedWhole(t *testing.T) {
	emu, v := realVerifier(t)
	f := newFixture(t, v)
	const deep = 9990
	body := []byte(`{"payload":[` + strings.Repeat("[", deep) + strings.Repeat("]", deep) + `]}`)
	const n = 20
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = signedRequest(t, emu, f.http.URL+webhookPath, body)
		reqs[i].Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	runtime.GC()
	// No collection meanwhile: it would shrink the grown stacks again.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	served, release := make(chan int, n), make(chan struct{})
	for _, req := range reqs {
		go func() {
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			served <- rec.Code
			<-release
		}()
	}
	for range n {
		if code := <-served; code != http.StatusUnauthorized {
			t.Errorf("forged deep body: status %d, want 401", code)
		}
	}
	runtime.ReadMemStats(&after)
	close(release)
	if grown := int64(after.StackInuse) - int64(before.StackInuse); grown > n<<20/4 {
		t.Errorf("stacks grew by %d bytes serving %d forged deep bodies", grown, n)
	}
}
