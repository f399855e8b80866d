package release

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// ClientOptions configures a Client. TrustedRoot, MetadataDir, BaseURL and
// Hardware are required.
type ClientOptions struct {
	// TrustedRoot is the root.json shipped in the device image: the first
	// trust anchor. A newer root cached in MetadataDir takes precedence.
	TrustedRoot []byte
	// MetadataDir caches trusted metadata between refreshes (and reboots),
	// which is what makes rollback detectable.
	MetadataDir string
	// BaseURL is the repository's root: BaseURL/metadata/ and
	// BaseURL/targets/.
	BaseURL string
	// Hardware is this device's hardware ID, matched against ImageMeta.Hardware.
	Hardware string
	// HTTPClient performs the downloads; nil means a private client. Its
	// own Timeout, if any, still applies.
	HTTPClient *http.Client
	// Timeout bounds each metadata download (0: 30 s), so a server that
	// trickles bytes cannot stall the device (slow retrieval).
	Timeout time.Duration
	// MaxTimestampBytes and MaxMetadataBytes bound the timestamp and every
	// other metadata file (0: 16 KiB and 4 MiB), so a server cannot fill
	// memory (endless data).
	MaxTimestampBytes, MaxMetadataBytes int64
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// TimeFloor is a time the device knows has passed (the running
	// image's build time, the last trusted time): expiry is checked
	// against the later of it and Now, so a clock reset to 1970 cannot
	// make expired metadata look fresh.
	TimeFloor time.Time
	// Logger receives refresh outcomes (nil: discard).
	Logger *slog.Logger
}

// Client is the device's view of a release repository. It is safe for
// concurrent use; Refresh calls are serialised.
type Client struct {
	opts   ClientOptions
	http   *http.Client
	ownsHT bool
	log    *slog.Logger

	refreshMu sync.Mutex // one TUF workflow at a time: they share the cache

	mu      sync.Mutex
	targets map[string]*metadata.TargetFiles // from the last good refresh
	trusted time.Time                        // reference time of the last good refresh
}

// Target is an image TUF vouches for.
type Target struct {
	Name   string
	Length int64
	SHA256 [32]byte
	Meta   ImageMeta
	// URL is where the image is served (consistent snapshots: the
	// hash-prefixed name). The installer must still check Length and
	// SHA256 on the bytes it writes.
	URL string
}

// NewClient checks opts and creates the metadata cache directory (0700).
func NewClient(opts ClientOptions) (*Client, error) {
	if len(opts.TrustedRoot) == 0 {
		return nil, errors.New("new release client: no trusted root")
	}
	if _, err := metadata.Root().FromBytes(opts.TrustedRoot); err != nil {
		return nil, fmt.Errorf("new release client: trusted root: %w", err)
	}
	if opts.MetadataDir == "" {
		return nil, errors.New("new release client: no metadata directory")
	}
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("new release client: base URL %q is not an http(s) URL", opts.BaseURL)
	}
	if !hwRE.MatchString(opts.Hardware) {
		return nil, fmt.Errorf("new release client: hardware ID %q is invalid", opts.Hardware)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxTimestampBytes <= 0 {
		opts.MaxTimestampBytes = 16 << 10
	}
	if opts.MaxMetadataBytes <= 0 {
		opts.MaxMetadataBytes = 4 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Client{opts: opts, http: opts.HTTPClient, log: opts.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.http == nil {
		c.http = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		c.ownsHT = true
	}
	if err := os.MkdirAll(opts.MetadataDir, 0o700); err != nil {
		return nil, fmt.Errorf("new release client: %w", err)
	}
	return c, nil
}

// Close releases the private HTTP client's idle connections.
func (c *Client) Close() {
	if c.ownsHT {
		c.http.CloseIdleConnections()
	}
}

// refTime is the time expiry is checked against: the latest of the
// clock, the configured floor and the last good refresh, so the clock
// stepping back never makes expired metadata acceptable again.
func (c *Client) refTime() time.Time {
	t := c.opts.Now()
	if t.Before(c.opts.TimeFloor) {
		t = c.opts.TimeFloor
	}
	c.mu.Lock()
	if t.Before(c.trusted) {
		t = c.trusted
	}
	c.mu.Unlock()
	return t.UTC()
}

// TrustedTime is the reference time of the last successful Refresh (zero
// before one): a time the device knows has passed. Persist it and pass it
// as TimeFloor after a reboot.
func (c *Client) TrustedTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trusted
}

// Refresh runs TUF's client workflow: root rotations, timestamp, snapshot,
// targets, each verified against the trust it builds on. On error the
// targets of the previous good refresh stay in effect for Target, and the
// cache holds only metadata that verified.
func (c *Client) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	ref := c.refTime()
	targets, err := c.refresh(ctx, ref)
	if err != nil {
		c.log.Warn("release metadata refresh refused", "err", err)
		return fmt.Errorf("refresh release metadata: %w", err)
	}
	c.mu.Lock()
	c.targets = targets
	c.trusted = ref
	c.mu.Unlock()
	c.log.Info("release metadata refreshed", "targets", len(targets))
	return nil
}

func (c *Client) refresh(ctx context.Context, ref time.Time) (map[string]*metadata.TargetFiles, error) {
	cfg, err := config.New(c.metadataURL(), c.trustedRoot())
	if err != nil {
		return nil, err
	}
	cfg.LocalMetadataDir = c.opts.MetadataDir
	// Images are not fetched through go-tuf (the installer streams them
	// into a slot), but its config wants a targets directory.
	cfg.LocalTargetsDir = filepath.Join(c.opts.MetadataDir, "targets")
	cfg.RemoteTargetsURL = c.targetsURL()
	cfg.TimestampMaxLength = c.opts.MaxTimestampBytes
	cfg.RootMaxLength = c.opts.MaxMetadataBytes
	cfg.SnapshotMaxLength = c.opts.MaxMetadataBytes
	cfg.TargetsMaxLength = c.opts.MaxMetadataBytes
	fe := &fetcher{ctx: ctx, http: c.http, timeout: c.opts.Timeout}
	cfg.Fetcher = fe
	up, err := updater.New(cfg)
	if err != nil {
		return nil, classify(err)
	}
	up.UnsafeSetRefTime(ref)
	if err := up.Refresh(); err != nil {
		// go-tuf's messages do not always name the role ("expected 3,
		// got 2"); the file fetched last does.
		if fe.last != "" && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrTimeout) {
			return nil, fmt.Errorf("%w (last fetched %s)", classify(err), fe.last)
		}
		return nil, classify(err)
	}
	return up.GetTopLevelTargets(), nil
}

// trustedRoot prefers the newest verified root in the cache: go-tuf
// persists each root it accepts there. A cached root that does not parse
// falls back to the image's root, which is trusted anyway; the rotation
// chain is then walked again from it.
func (c *Client) trustedRoot() []byte {
	p := filepath.Join(c.opts.MetadataDir, "root.json")
	b, err := os.ReadFile(p)
	if err == nil {
		if _, perr := metadata.Root().FromBytes(b); perr == nil {
			return b
		} else {
			c.log.Warn("cached root unreadable, starting from the image's root", "path", p, "err", perr)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("cached root unreadable, starting from the image's root", "path", p, "err", err)
	}
	return c.opts.TrustedRoot
}

func (c *Client) metadataURL() string { return c.opts.BaseURL + "/metadata/" }
func (c *Client) targetsURL() string  { return c.opts.BaseURL + "/targets/" }

// Target returns the image published under name, as of the last
// successful Refresh. It refuses names TUF does not list
// (ErrUnknownTarget), targets without a sha256 or with invalid custom
// metadata (ErrBadImageMeta), and images for other hardware
// (ErrWrongHardware).
func (c *Client) Target(name string) (Target, error) {
	if err := ValidName(name); err != nil {
		return Target{}, fmt.Errorf("target: %w", err)
	}
	c.mu.Lock()
	targets := c.targets
	c.mu.Unlock()
	if targets == nil {
		return Target{}, fmt.Errorf("target %s: %w", name, ErrNotRefreshed)
	}
	tf, ok := targets[name]
	if !ok {
		return Target{}, fmt.Errorf("target %s: %w", name, ErrUnknownTarget)
	}
	sum := tf.Hashes["sha256"]
	if len(sum) != 32 || tf.Length <= 0 {
		return Target{}, fmt.Errorf("target %s: %w: needs a positive length and a sha256", name, ErrBadImageMeta)
	}
	if tf.Custom == nil {
		return Target{}, fmt.Errorf("target %s: %w: no custom metadata", name, ErrBadImageMeta)
	}
	if isDelta(*tf.Custom) {
		return Target{}, fmt.Errorf("target %s: %w: it is a delta, not an image (Client.Delta)", name, ErrBadImageMeta)
	}
	meta, err := decodeImageMeta(*tf.Custom)
	if err != nil {
		return Target{}, fmt.Errorf("target %s: %w", name, err)
	}
	if !slices.Contains(meta.Hardware, c.opts.Hardware) {
		return Target{}, fmt.Errorf("target %s: %w: built for %v, this device is %q", name, ErrWrongHardware, meta.Hardware, c.opts.Hardware)
	}
	t := Target{Name: name, Length: tf.Length, Meta: meta,
		URL: c.targetsURL() + hex.EncodeToString(sum) + "." + url.PathEscape(name)}
	copy(t.SHA256[:], sum)
	return t, nil
}

// classify wraps go-tuf's error with the package's sentinel for it, so a
// caller can tell a rollback from a freeze from a bad signature.
func classify(err error) error {
	var sentinel error
	switch {
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrTimeout):
		return err // from our fetcher, already classified
	case errors.Is(err, &metadata.ErrBadVersionNumber{}):
		sentinel = ErrRollback
	case errors.Is(err, &metadata.ErrExpiredMetadata{}):
		sentinel = ErrExpired
	case errors.Is(err, &metadata.ErrUnsignedMetadata{}):
		sentinel = ErrBadSignature
	case errors.Is(err, &metadata.ErrLengthOrHashMismatch{}):
		sentinel = ErrMismatch
	case errors.Is(err, &metadata.ErrDownloadLengthMismatch{}):
		sentinel = ErrTooLarge
	default:
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// fetcher is go-tuf's download seam: bounded in size and time, and
// cancelled with the Refresh's context (go-tuf's own Fetcher takes none).
type fetcher struct {
	ctx     context.Context
	http    *http.Client
	timeout time.Duration
	last    string // URL of the latest download attempt
}

func (f *fetcher) DownloadFile(u string, maxLength int64, _ time.Duration) ([]byte, error) {
	f.last = u
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	b, err := f.download(ctx, u, maxLength)
	if err != nil && errors.Is(err, context.DeadlineExceeded) && f.ctx.Err() == nil {
		return nil, fmt.Errorf("%w: %s after %v: %w", ErrTimeout, u, f.timeout, err)
	}
	return b, err
}

func (f *fetcher) download(ctx context.Context, u string, maxLength int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	res, err := f.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		// go-tuf reads a 404 for the next root version as "no rotation".
		return nil, &metadata.ErrDownloadHTTP{StatusCode: res.StatusCode, URL: u}
	}
	if res.ContentLength > maxLength {
		return nil, fmt.Errorf("%w: %s announces %d bytes, limit %d", ErrTooLarge, u, res.ContentLength, maxLength)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxLength+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u, err)
	}
	if int64(len(b)) > maxLength {
		return nil, fmt.Errorf("%w: %s exceeds %s bytes", ErrTooLarge, u, strconv.FormatInt(maxLength, 10))
	}
	return b, nil
}
