package thumbnails_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"sync"
	"testing"

	"github.com/ddbtrack/ddbtrack/ddbtracktest"

	thumbnails "github.com/ddbtrack/ddbtrack/examples/testing"
)

func TestWorkMakesThumbnailsAndGivesUpOnBrokenImages(t *testing.T) {
	t.Parallel()
	tr := ddbtracktest.New(t, thumbnails.Config(""))
	store := &memStore{files: map[string][]byte{"cat.png": pngOf(t, 64, 32), "broken.png": []byte("not a png")}}
	svc := &thumbnails.Service{Tracker: tr, Store: store, Width: 16}

	if err := svc.Enqueue(t.Context(), "cat.png", "broken.png"); err != nil {
		t.Fatal(err)
	}
	res := ddbtracktest.Drain(t, tr, svc.Work)

	ddbtracktest.RequireTask(t, tr, "cat.png", ddbtracktest.Want[thumbnails.Status]{
		Status: thumbnails.Done,
		Output: thumbnails.Result{Key: "thumbs/cat.png", Width: 16, Height: 8},
	})
	ddbtracktest.RequireTask(t, tr, "broken.png", ddbtracktest.Want[thumbnails.Status]{
		Status: thumbnails.GaveUp, Attempts: 3, LastError: "decode broken.png",
	})
	if res.Succeeded != 1 || res.Ignored != 1 {
		t.Errorf("Drain: %+v, want one success and one image given up on", res)
	}
	if _, ok := store.get("thumbs/cat.png"); !ok {
		t.Error("the thumbnail was not stored")
	}
}

func TestEnqueueTwiceMakesOneThumbnail(t *testing.T) {
	t.Parallel()
	tr := ddbtracktest.New(t, thumbnails.Config(""))
	store := &memStore{files: map[string][]byte{"cat.png": pngOf(t, 64, 32)}}
	svc := &thumbnails.Service{Tracker: tr, Store: store, Width: 16}

	for range 2 { // A client that retried its upload.
		if err := svc.Enqueue(t.Context(), "cat.png"); err != nil {
			t.Fatal(err)
		}
	}
	res, err := svc.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Claimed != 1 {
		t.Errorf("Run claimed %d tasks, want 1", res.Claimed)
	}
	ddbtracktest.RequireTask(t, tr, "cat.png", ddbtracktest.Want[thumbnails.Status]{Status: thumbnails.Done})
}

// memStore is a Store in memory. The workers call it concurrently.
type memStore struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (s *memStore) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[key], nil
}

func (s *memStore) Put(_ context.Context, key string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[key] = data
	return nil
}

func (s *memStore) get(key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[key]
	return b, ok
}

// pngOf returns a PNG image of the given size.
func pngOf(t *testing.T, width, height int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewGray(image.Rect(0, 0, width, height))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
