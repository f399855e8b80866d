package kiosk

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHTTPStatus(t *testing.T) {
	var code int
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/status" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	o, err := OriginOf(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	src := NewHTTPStatus(o, &http.Client{Timeout: 5 * time.Second})
	ctx := t.Context()

	code, body = http.StatusOK, `{"bootId":"b1","state":"ready"}`
	st, err := src.Status(ctx)
	if err != nil || st.BootID != "b1" {
		t.Fatalf("Status = %+v, %v; want bootId b1", st, err)
	}

	code, body = http.StatusServiceUnavailable, `{}`
	if _, err := src.Status(ctx); !errors.Is(err, ErrBadStatus) {
		t.Errorf("503: err = %v, want ErrBadStatus", err)
	}
	code, body = http.StatusOK, `<html>a proxy page</html>`
	if _, err := src.Status(ctx); !errors.Is(err, ErrBadStatus) {
		t.Errorf("HTML: err = %v, want ErrBadStatus", err)
	}

	srv.Close()
	if _, err := src.Status(ctx); err == nil {
		t.Error("closed server: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := src.Status(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}
