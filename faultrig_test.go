package ddbtrack_test

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
	"github.com/ddbtrack/ddbtrack/internal/dev/faultproxy"
)

// The chaos test and the lost-response tests send their workers' requests
// through a fault proxy. Two things set them apart from fault_test.go's
// faultClient and newProxy:
//
//   - On moto, ddblocal makes every client of a process take one global lock
//     per request, because moto checks a condition and applies the write
//     without a lock of its own. A request that the proxy holds (Hang, or a
//     test that acts between a lost response and its retry) would then hold
//     up every other request of the test binary, heartbeats included, and
//     the chaos workers are separate processes that the lock does not
//     reach anyway. So rigTarget serialises requests where they reach moto
//     instead, after the proxy, and rigClient leaves the lock out.
//   - The retry settings are named here, because the tests count on them.

// rigAttempts is how many times a rig client sends a request before it
// gives up: the SDK's standard retryer with a few quick retries.
const rigAttempts = 5

// rigClient returns a client for endpoint that retries rigAttempts times
// with short pauses, has no client-side retry quota (which a run full of
// injected faults would use up, and then refuse every retry), and does not
// take ddblocal's in-process moto lock.
func rigClient(t testing.TB, endpoint string) *dynamodb.Client {
	t.Helper()
	c, err := ddblocal.NewClient(context.Background(), endpoint)
	require.NoError(t, err)
	return dynamodb.New(c.Options(), func(o *dynamodb.Options) {
		o.HTTPClient = awshttp.NewBuildableClient()
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = rigAttempts
			so.MaxBackoff = 50 * time.Millisecond
			so.RateLimiter = ratelimit.None
		})
	})
}

// rigTarget returns the endpoint a fault proxy forwards to: the test
// server itself, or on moto a forwarder in this process that passes one
// request at a time, as dynalite and DynamoDB apply one item's writes.
func rigTarget(t testing.TB) string {
	t.Helper()
	endpoint := serverEndpoint(t)
	if serverKind() != "moto" {
		return endpoint
	}
	u, err := url.Parse(endpoint)
	require.NoError(t, err)
	srv := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // Keep the host the request was signed for.
		},
		Transport: &oneAtATime{next: http.DefaultTransport},
		// A request whose client gave up, such as a renewal cut short when
		// its attempt ended, is no news to a test: do not log it.
		ErrorLog: log.New(io.Discard, "", 0),
	})
	t.Cleanup(srv.Close)
	return srv.URL
}

// oneAtATime sends one request at a time, each with its whole response
// read before the next one goes.
type oneAtATime struct {
	mu   sync.Mutex
	next http.RoundTripper
}

func (o *oneAtATime) RoundTrip(r *http.Request) (*http.Response, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	resp, err := o.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, err
}

// rig is a fault proxy in front of the test server, and the endpoint
// behind it for requests that must not meet faults.
type rig struct {
	proxy  *faultproxy.Proxy
	direct string
}

func newRig(t testing.TB, seed uint64) *rig {
	t.Helper()
	target := rigTarget(t)
	p, err := faultproxy.New(target, seed)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return &rig{proxy: p, direct: target}
}

// faulty returns a client whose requests go through the proxy.
func (r *rig) faulty(t testing.TB) *dynamodb.Client { return rigClient(t, r.proxy.URL) }

// clean returns a client whose requests reach the server untouched, but
// one at a time with the faulty clients' on moto.
func (r *rig) clean(t testing.TB) *dynamodb.Client { return rigClient(t, r.direct) }
