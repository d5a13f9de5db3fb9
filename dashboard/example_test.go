package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	fixture "github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard"
)

// Step is a service's own enum of task statuses.
type Step int

const (
	Queued Step = iota
	Resizing
	Retrying
	Done
	GaveUp
)

func (s Step) String() string {
	return [...]string{"queued", "resizing", "retrying", "done", "gave-up"}[s]
}

// localClient stands in for dynamodb.NewFromConfig(awsCfg): it is a client
// for the local server the tests run against.
func localClient() *dynamodb.Client {
	client, err := fixture.SharedClient()
	if err != nil {
		panic(err)
	}
	return client
}

// This example mounts the dashboard of a service's job under /ops/tasks/ of
// the service's own net/http server, next to the service's other routes.
// In a real service, put your authentication in front of it.
func ExampleNew() {
	ctx := context.Background()
	tracker, err := ddbtrack.New(localClient(), ddbtrack.Config[Step]{
		Table:     fmt.Sprintf("example-%08x", rand.Uint32()),
		Job:       "thumbnails",
		Pending:   Queued,
		Running:   Resizing,
		Failed:    Retrying,
		Succeeded: Done,
		Ignored:   GaveUp,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	if err := tracker.CreateTable(ctx); err != nil {
		panic(err)
	}
	if err := tracker.Create(ctx, ddbtrack.NewTask{ID: "photos/00001.jpg"}); err != nil {
		panic(err)
	}

	dash, err := dashboard.New(tracker, dashboard.Options{Prefix: "/ops/tasks", ReadOnly: true})
	if err != nil {
		panic(err)
	}
	// Fail at start if the table or its index is missing, rather than on
	// the first page.
	if _, err := dash.Check(ctx); err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ops/tasks/", dash)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	resp, err := http.Get("http://" + ln.Addr().String() + "/ops/tasks/tasks?status=pending")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Status)
	fmt.Println(strings.Contains(string(page), `href="/ops/tasks/task?id=photos%2F00001.jpg"`))
	// Output:
	// 200 OK
	// true
}
