package ddbtrack_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/ddbstub"
)

// BenchmarkLifecycle measures ddbtrack's own CPU time and allocations for
// one task's whole life (create, claim, success) against ddbstub, an
// in-process store, so no server, network or SDK serialization is
// involved: the SDK's middleware stack, signing and JSON encoding run
// inside *dynamodb.Client, which the stub replaces. What is measured is
// ddbtrack's code (validation, keys, expressions, decoding, logging calls)
// plus the stub's evaluation of the requests, which is the same for the
// baseline.
//
// impl=baseline drives the same stub with the raw-SDK baseline's three
// requests, and logs nothing. impl=ddbtrack with log=off uses
// slog.DiscardHandler; with log=info, a JSON handler writing to io.Discard,
// which is what ddbtrack's default Info logging costs before any I/O. Each task is deleted from the
// stub after its life, by a DeleteItem sent straight to the stub in both
// cases, so that the stub's memory does not grow with b.N.
//
// cpu-ns/op is the process's CPU time (user and system, including the
// garbage collector's) per lifecycle. On a shared machine it is steadier
// than ns/op, which also counts time spent waiting for a core.
func BenchmarkLifecycle(b *testing.B) {
	data, err := attributevalue.Marshal(payload{Version: 1})
	require.NoError(b, err)
	for _, bc := range []struct {
		name   string
		logger *slog.Logger
	}{
		{"log=off/impl=baseline", slog.New(slog.DiscardHandler)},
		{"log=off/impl=ddbtrack", slog.New(slog.DiscardHandler)},
		{"log=info/impl=ddbtrack", slog.New(slog.NewJSONHandler(io.Discard, nil))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			stub := ddbstub.New()
			cfg := ddbtrack.Config[Step]{
				Table: "bench", Job: "bench-job", Pending: Todo, Running: InProgress, Failed: Failed, Succeeded: Success, Ignored: Ignore,
				Logger: bc.logger,
			}
			tr, err := ddbtrack.New(stub, cfg)
			require.NoError(b, err)
			require.NoError(b, tr.CreateTable(ctx))
			base := newBaseline(stub, cfg)
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = "task-" + strconv.Itoa(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for _, id := range ids {
				if bc.name == "log=off/impl=baseline" {
					if err := base.create(ctx, id, data); err != nil {
						b.Fatal(err)
					}
					if err := base.start(ctx, id, nopData); err != nil {
						b.Fatal(err)
					}
				} else {
					if err := tr.Create(ctx, id, payload{Version: 1}); err != nil {
						b.Fatal(err)
					}
					if err := tr.Start(ctx, id, okFn); err != nil {
						b.Fatal(err)
					}
				}
				// Keep the stub's memory, and so the garbage collector's
				// work, from growing with b.N. The same for both.
				if _, err := stub.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &cfg.Table, Key: base.key(id)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
