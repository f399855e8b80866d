package chromium

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Page drives one tab with the steps a person takes, failing the test
// with what the page shows when a step cannot be done.
type Page struct {
	t       testing.TB
	ctx     context.Context
	Timeout time.Duration // for WaitFor; default 15 s
}

// NewPage drives the tab ctx (Browser.Tab, or a tab opened from it).
func NewPage(t testing.TB, ctx context.Context) *Page {
	return &Page{t: t, ctx: ctx, Timeout: 15 * time.Second}
}

// Do runs actions as one step.
func (p *Page) Do(step string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v\npage: %s", step, err, p.text())
	}
}

// Eval returns a JavaScript expression's value as a string.
func (p *Page) Eval(expr string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](fmt.Sprintf("String((() => %s)())", expr)))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (p *Page) text() string {
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`String(document.body ? document.body.innerText.slice(0, 2000) : "")`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return v
}

// WaitFor polls a JavaScript condition until it holds.
func (p *Page) WaitFor(what, cond string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.PollFunction[bool]("() => Boolean("+cond+")",
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(p.Timeout)))
	if err != nil {
		p.t.Fatalf("waiting for %s (%s): %v\npage: %s", what, cond, err, p.text())
	}
}

// Fill sets a field's value and tells the page, as typing would.
func (p *Page) Fill(sel, value string) {
	p.t.Helper()
	p.Do("fill "+sel, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { const e = document.querySelector(%s);
		e.value = %s; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); })()`,
		JSString(sel), JSString(value))))
}

// Click clicks the element sel names.
func (p *Page) Click(sel string) {
	p.t.Helper()
	p.Do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}
