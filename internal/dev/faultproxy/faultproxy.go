// Package faultproxy is an HTTP proxy for tests that sits between a
// DynamoDB client and a local server and injects the faults a real network
// and a real DynamoDB produce: responses lost after the server applied the
// write, slow responses, throttling, server errors and cut connections.
//
// Point a client at [Proxy.URL] and choose faults with [Proxy.Set]. A
// [Rule] picks requests by operation (the X-Amz-Target header), by an
// optional predicate on the body, by probability and by count. Random
// choices come from a seeded generator, so a test that sends its requests
// in a fixed order sees the same faults on every run; concurrent requests
// reach the generator in whatever order they arrive.
package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what the proxy does to a request that a rule selects.
type Fault int

const (
	// Drop forwards the request, lets the server apply it, and then cuts
	// the connection instead of answering: the client cannot tell whether
	// the write happened. This is the ambiguous result that retries and
	// fencing must get right.
	Drop Fault = iota + 1

	// Delay forwards the request and holds the response for Rule.Delay.
	Delay

	// Throttle answers as DynamoDB does when a table or partition is over
	// its capacity: HTTP 400 with a ProvisionedThroughputExceededException,
	// which the SDK retries with backoff. The server never sees the request.
	Throttle

	// ServerError answers HTTP 500 with an InternalServerError, which the
	// SDK retries. The server never sees the request.
	ServerError

	// Cut closes the connection without forwarding the request.
	Cut

	// Hang holds the request without forwarding it until the client gives
	// up or Rule.Delay passes (if set), then cuts the connection: a network
	// that swallows packets.
	Hang

	// Late holds the request for Rule.Delay, whether or not the client has
	// given up meanwhile, then forwards it and cuts the connection: a
	// request stuck in a queue on the way, which the server applies after
	// the client stopped waiting for it.
	Late
)

func (f Fault) String() string {
	switch f {
	case Drop:
		return "drop"
	case Delay:
		return "delay"
	case Throttle:
		return "throttle"
	case ServerError:
		return "server-error"
	case Cut:
		return "cut"
	case Hang:
		return "hang"
	case Late:
		return "late"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// Rule selects requests and the fault to inject into them. The first rule
// that selects a request decides its fate; a request no rule selects is
// forwarded untouched.
type Rule struct {
	// Op is the DynamoDB operation to match, such as "UpdateItem". Empty
	// matches every operation.
	Op string

	// Match, if set, must also return true: it sees the operation and the
	// request body (JSON), so a rule can single out, say, lease renewals
	// among all UpdateItem calls.
	Match func(op string, body []byte) bool

	// Fault is what to do.
	Fault Fault

	// Delay is how long Delay holds a response, and how long Hang holds a
	// request before cutting it (0 means until the client gives up).
	Delay time.Duration

	// Probability is the chance that a matching request is hit, from the
	// proxy's seeded generator. Defaults to 0, which means always.
	Probability float64

	// Count caps how many requests the rule hits. Defaults to 0, no cap.
	Count int
}

// Proxy is a running fault-injecting proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	// URL is the proxy's base URL, to use as the client's endpoint.
	URL string

	target    string
	srv       *http.Server
	transport *http.Transport

	// forwarding counts requests on their way to the server and back.
	forwarding atomic.Int64

	mu       sync.Mutex
	rng      *rand.Rand
	rules    []*rule
	injected map[Fault]int
	requests map[string]int
}

type rule struct {
	Rule
	hits int
}

// New starts a proxy on a free loopback port in front of target, such as
// "http://127.0.0.1:8000", with random choices seeded by seed.
func New(target string, seed uint64) (*Proxy, error) {
	if !strings.HasPrefix(target, "http://") {
		return nil, fmt.Errorf("faultproxy: target %q is not an http:// URL: pass the local server's endpoint", target)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen on 127.0.0.1: %w", err)
	}
	p := &Proxy{
		URL:       "http://" + l.Addr().String(),
		target:    strings.TrimSuffix(target, "/"),
		transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		injected:  map[Fault]int{},
		requests:  map[string]int{},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// Close stops the proxy and cuts every connection through it.
func (p *Proxy) Close() error {
	err := p.srv.Close()
	p.transport.CloseIdleConnections()
	return err
}

// Set replaces the rules. With no arguments it clears them, so every
// request passes untouched.
func (p *Proxy) Set(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = p.rules[:0]
	for _, r := range rules {
		p.rules = append(p.rules, &rule{Rule: r})
	}
}

// WaitIdle waits until no request is on its way to the server, or ctx
// ends. With a rule that cuts every request in force, it leaves the server
// quiet, so it can be stopped between writes: a local server stopped in the
// middle of a write may leave its indexes out of step with its items
// (dynalite updates an item and its index entries in separate steps), which
// DynamoDB never does.
func (p *Proxy) WaitIdle(ctx context.Context) error {
	for p.forwarding.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// Injected returns how many times each fault has been injected so far.
func (p *Proxy) Injected() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Fault]int, len(p.injected))
	for f, n := range p.injected {
		out[f] = n
	}
	return out
}

// Requests returns how many requests of each operation reached the proxy.
func (p *Proxy) Requests() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.requests))
	for op, n := range p.requests {
		out[op] = n
	}
	return out
}

// choose returns the fault for a request, or 0 to pass it through.
func (p *Proxy) choose(op string, body []byte) (Fault, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests[op]++
	for _, r := range p.rules {
		if r.Op != "" && r.Op != op {
			continue
		}
		if r.Count > 0 && r.hits >= r.Count {
			continue
		}
		if r.Match != nil && !r.Match(op, body) {
			continue
		}
		if r.Probability > 0 && p.rng.Float64() >= r.Probability {
			continue
		}
		r.hits++
		p.injected[r.Fault]++
		return r.Fault, r.Delay
	}
	return 0, 0
}

// Op returns the DynamoDB operation a request calls, from its X-Amz-Target
// header ("DynamoDB_20120810.UpdateItem" gives "UpdateItem").
func Op(r *http.Request) string {
	target := r.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(target, '.'); i >= 0 {
		return target[i+1:]
	}
	return target
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		cut(w)
		return
	}
	fault, delay := p.choose(Op(r), body)
	switch fault {
	case Throttle:
		awsError(w, http.StatusBadRequest, "ProvisionedThroughputExceededException",
			"The level of configured provisioned throughput for the table was exceeded (injected by faultproxy)")
		return
	case ServerError:
		awsError(w, http.StatusInternalServerError, "InternalServerError", "Internal server error (injected by faultproxy)")
		return
	case Cut:
		cut(w)
		return
	case Hang:
		wait(r.Context(), delay)
		cut(w)
		return
	case Late:
		time.Sleep(delay)
		p.forwarding.Add(1)
		_, _ = p.forward(r.WithContext(context.WithoutCancel(r.Context())), body)
		p.forwarding.Add(-1)
		cut(w)
		return
	}

	p.forwarding.Add(1)
	resp, err := p.forward(r, body)
	p.forwarding.Add(-1)
	if err != nil {
		// The server is down or restarting: say so the way a load
		// balancer would, which the SDK retries.
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	switch fault {
	case Drop:
		cut(w)
		return
	case Delay:
		wait(r.Context(), delay)
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(resp.body)
}

// response is a server response read in full, so that Drop can decide to
// throw it away after the server has finished with the request.
type response struct {
	StatusCode int
	Header     http.Header
	body       []byte
}

func (p *Proxy) forward(r *http.Request, body []byte) (*response, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	req.Host = r.Host // The request was signed for this host.
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	resp.Header.Del("Content-Length")
	return &response{StatusCode: resp.StatusCode, Header: resp.Header, body: b}, nil
}

// awsError writes an error in DynamoDB's JSON protocol, which the SDK
// decodes into its typed errors.
func awsError(w http.ResponseWriter, status int, code, msg string) {
	body := fmt.Appendf(nil, `{"__type":"com.amazonaws.dynamodb.v20120810#%s","message":%q}`, code, msg)
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Errortype", code)
	// DynamoDB signs every body with its CRC32, and the SDK checks it.
	w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// cut closes the client's connection without an answer.
func cut(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(errors.New("faultproxy: the response writer cannot be hijacked; the proxy must serve HTTP/1.1"))
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		// A reset rather than an orderly close: what a dead peer or a
		// middlebox that gave up looks like.
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

func wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
