// Package thumbnails is a small service written as a user of ddbtrack would
// write one: it queues uploaded images, and its workers turn each into a
// thumbnail, with ddbtrack keeping track of which are done, which failed and
// why. Its test, thumbnails_test.go, shows how such code is tested with the
// ddbtracktest kit.
package thumbnails

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"

	"github.com/ddbtrack/ddbtrack"
)

// Status is where an image is on its way to a thumbnail.
type Status int

const (
	Queued Status = iota
	Resizing
	Retrying
	Done
	GaveUp
)

func (s Status) String() string {
	return [...]string{"queued", "resizing", "retrying", "done", "gave-up"}[s]
}

// Config returns the tracker configuration of the thumbnail job in table.
func Config(table string) ddbtrack.Config[Status] {
	return ddbtrack.Config[Status]{
		Table:   table,
		Job:     "thumbnails",
		Pending: Queued, Running: Resizing, Failed: Retrying, Succeeded: Done, Ignored: GaveUp,
	}
}

// Store holds the images and their thumbnails: a bucket in production, a
// map in tests.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Put(ctx context.Context, key string, data []byte) error
}

// Result is what a finished task records: where the thumbnail is, and its
// size.
type Result struct {
	Key           string
	Width, Height int
}

// Service makes thumbnails Width pixels wide.
type Service struct {
	Tracker *ddbtrack.Tracker[Status]
	Store   Store
	Width   int
}

// Enqueue queues a thumbnail for each image. An image already queued, or
// done, is left as it is, so an upload retried by a client is harmless.
func (s *Service) Enqueue(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		err := s.Tracker.Create(ctx, ddbtrack.NewTask{ID: key})
		if err != nil && !errors.Is(err, ddbtrack.ErrTaskExists) {
			return err
		}
	}
	return nil
}

// Run makes the queued thumbnails until none is left.
func (s *Service) Run(ctx context.Context) (ddbtrack.ProcessResult, error) {
	return s.Tracker.Process(ctx, s.Work, ddbtrack.ProcessOptions[Status]{})
}

// Work makes one image's thumbnail. It is the function the workers run on
// each task, whose ID is the image's key.
func (s *Service) Work(ctx context.Context, task *ddbtrack.Task[Status]) error {
	data, err := s.Store.Get(ctx, task.ID)
	if err != nil {
		return err
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("decode %s: %w", task.ID, err)
	}
	thumb := shrink(img, s.Width)
	var out bytes.Buffer
	if err := png.Encode(&out, thumb); err != nil {
		return err
	}
	key := "thumbs/" + task.ID
	if err := s.Store.Put(ctx, key, out.Bytes()); err != nil {
		return err
	}
	b := thumb.Bounds()
	return task.SetOutput(Result{Key: key, Width: b.Dx(), Height: b.Dy()})
}

// shrink scales img down to width pixels, keeping its aspect ratio, by
// taking the nearest pixel: crude, and enough for an example.
func shrink(img image.Image, width int) image.Image {
	src := img.Bounds()
	if src.Dx() <= width {
		return img
	}
	height := max(1, src.Dy()*width/src.Dx())
	dst := image.NewRGBA(image.Rect(0, 0, width, height))
	for y := range height {
		for x := range width {
			dst.Set(x, y, img.At(src.Min.X+x*src.Dx()/width, src.Min.Y+y*src.Dy()/height))
		}
	}
	return dst
}
