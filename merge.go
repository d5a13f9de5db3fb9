package ddbtrack

import (
	"container/heap"
	"context"
	"fmt"
	"iter"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// This file merges the streams of a query's index partitions into one
// ordered stream. Order keys are unique and sort as the query returns
// tasks, so the merge compares them as strings and needs nothing else.

// stream reads one index partition page by page.
type stream struct {
	name string               // The partition's status_key, for errors.
	in   *dynamodb.QueryInput // ExclusiveStartKey advances page by page.
	buf  []map[string]types.AttributeValue
	pos  int  // buf[pos] is the next item to hand out.
	done bool // No page is left to read.
}

// fill reads pages until the stream has an item or has no more. A filtered
// page may come back empty from a partition that has more.
func (s *stream) fill(ctx context.Context, c Client) error {
	for s.pos == len(s.buf) && !s.done {
		out, err := c.Query(ctx, s.in)
		if err != nil {
			return fmt.Errorf("ddbtrack: query index %s, partition %s: %w", indexName, s.name, err)
		}
		s.buf, s.pos = out.Items, 0
		s.in.ExclusiveStartKey = out.LastEvaluatedKey
		s.done = len(out.LastEvaluatedKey) == 0
	}
	return nil
}

func (s *stream) head() string { return str(s.buf[s.pos], attrOrderKey) }

// merge is a heap of streams by their next item.
type merge struct {
	streams []*stream
	desc    bool
}

func (m *merge) Len() int { return len(m.streams) }
func (m *merge) Less(i, j int) bool {
	if m.desc {
		return m.streams[i].head() > m.streams[j].head()
	}
	return m.streams[i].head() < m.streams[j].head()
}
func (m *merge) Swap(i, j int) { m.streams[i], m.streams[j] = m.streams[j], m.streams[i] }
func (m *merge) Push(x any)    { m.streams = append(m.streams, x.(*stream)) }
func (m *merge) Pop() any {
	s := m.streams[len(m.streams)-1]
	m.streams = m.streams[:len(m.streams)-1]
	return s
}

// seq runs the query, resuming after the order key after if it is not "".
func (p *plan[S]) seq(ctx context.Context, after string) iter.Seq2[*Task[S], error] {
	return func(yield func(*Task[S], error) bool) {
		streams := make([]*stream, 0, len(p.parts))
		for _, part := range p.parts {
			in, err := p.input(part, after)
			if err != nil {
				yield(nil, err)
				return
			}
			streams = append(streams, &stream{name: part.key(p.t.cfg.Job), in: in})
		}
		client := p.t.client
		if err := fanOut(ctx, len(streams), fanOutLimit, func(ctx context.Context, i int) error {
			return streams[i].fill(ctx, client)
		}); err != nil {
			yield(nil, err)
			return
		}
		m := &merge{desc: p.desc}
		for _, s := range streams {
			if s.pos < len(s.buf) {
				m.streams = append(m.streams, s)
			}
		}
		heap.Init(m)
		// dry is the stream whose last item was just handed out. It is
		// refilled only when the caller asks for the next task, so that a
		// break, or the limit, leaves its next page unread.
		var dry *stream
		for n := 0; p.limit == 0 || n < p.limit; n++ {
			if dry != nil {
				if err := dry.fill(ctx, client); err != nil {
					yield(nil, err)
					return
				}
				if dry.pos < len(dry.buf) {
					heap.Push(m, dry)
				}
				dry = nil
			}
			if m.Len() == 0 {
				return
			}
			s := m.streams[0]
			item := s.buf[s.pos]
			s.pos++
			if s.pos < len(s.buf) {
				heap.Fix(m, 0)
			} else {
				dry = heap.Pop(m).(*stream)
			}
			task, err := decodeTask[S](item)
			if !yield(task, err) || err != nil {
				return
			}
		}
	}
}
