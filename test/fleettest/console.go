package fleettest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"
)

// Console is a logged-in session on fleetd's console API, as the console's
// page holds one: the session cookie and the CSRF token it sends on every
// change.
type Console struct {
	t      testing.TB
	base   string
	client *http.Client
	csrf   string
}

// Login logs in with the account Start created.
func (f *Fleetd) Login() *Console { return f.LoginAs(AdminUser, AdminPassword) }

// LoginAs logs in as another account.
func (f *Fleetd) LoginAs(user, password string) *Console {
	f.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &Console{t: f.t, base: f.ConsoleURL, client: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	var sess struct {
		CSRFToken string `json:"csrfToken"`
	}
	if status := c.Do(http.MethodPost, "/api/v1/login", map[string]string{"username": user, "password": password}, &sess); status != http.StatusOK {
		f.t.Fatalf("console login as %s: HTTP %d", user, status)
	}
	c.csrf = sess.CSRFToken
	return c
}

// Do sends one API request and decodes a 2xx answer into out (when not
// nil). It returns the status; the body of an error answer is logged.
func (c *Console) Do(method, path string, body, out any) int {
	c.t.Helper()
	status, data := c.Raw(method, path, body, nil)
	if status/100 == 2 && out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	if status/100 != 2 {
		c.t.Logf("%s %s: HTTP %d %s", method, path, status, data)
	}
	return status
}

// Raw sends one request with extra headers and returns the status and the
// body as they are.
func (c *Console) Raw(method, path string, body any, header http.Header) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				c.t.Fatal(err)
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}
