package bootctl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// rig is one implementation with its loader played by the test.
type rig struct {
	ctl  Control
	dir  string                // everything the implementation keeps is under dir
	boot func(*testing.T) Slot // a reboot: the loader's choice and counting
}

type rigKind struct {
	name string
	new  func(t *testing.T) *rig
	// corrupt damages the state in one of several ways, by name.
	corrupt map[string]func(t *testing.T, dir string)
}

// varSlot is a booted-slot seam the rig's loader sets on each boot.
type varSlot struct {
	mu sync.Mutex
	v  string
}

func (v *varSlot) set(s string) { v.mu.Lock(); v.v = s; v.mu.Unlock() }
func (v *varSlot) get() string  { v.mu.Lock(); defer v.mu.Unlock(); return v.v }

var rigKinds = []rigKind{
	{
		name: "file",
		new: func(t *testing.T) *rig {
			dir := t.TempDir()
			fc, err := NewFileControl(filepath.Join(dir, "boot.json"), SlotA, nil)
			if err != nil {
				t.Fatal(err)
			}
			return &rig{ctl: fc, dir: dir, boot: func(t *testing.T) Slot {
				t.Helper()
				s, err := fc.Boot(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return s
			}}
		},
		corrupt: map[string]func(*testing.T, string){
			"truncated":      writeFile("boot.json", `{"default":"a","tri`),
			"unknown slot":   writeFile("boot.json", `{"default":"c","tries_left":0,"tries_done":0}`),
			"try is default": writeFile("boot.json", `{"default":"a","try":"a","tries_left":1,"tries_done":0}`),
			"unknown field":  writeFile("boot.json", `{"default":"a","tries_left":0,"tries_done":0,"next":"b"}`),
			"tries too many": writeFile("boot.json", `{"default":"a","try":"b","tries_left":12,"tries_done":0}`),
		},
	},
	{
		name: "grubenv",
		new: func(t *testing.T) *rig {
			dir := t.TempDir()
			envPath := filepath.Join(dir, "grubenv")
			// A block as grub-editenv creates it, with a variable of
			// someone else's that must survive.
			env := envBlock{{name: "saved_entry", raw: "0"}}
			data, err := env.encode()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(envPath, data, 0o644); err != nil {
				t.Fatal(err)
			}
			booted := &varSlot{v: "quiet atrium.slot=a"}
			g, err := NewGRUBEnv(GRUBEnvConfig{Path: envPath, Booted: func(context.Context) (Slot, error) {
				return SlotFromCmdline(booted.get())
			}})
			if err != nil {
				t.Fatal(err)
			}
			return &rig{ctl: g, dir: dir, boot: func(t *testing.T) Slot {
				t.Helper()
				id := runGRUBScript(t, GRUBScript, envPath)
				s, ok := strings.CutPrefix(id, "atrium-")
				if !ok {
					t.Fatalf("grub selected %q", id)
				}
				booted.set("quiet atrium.slot=" + s)
				if got, ok := readFileT(t, envPath); !ok || !strings.Contains(got, "saved_entry=0\n") {
					t.Fatalf("foreign variable lost:\n%s", got)
				}
				return Slot(s)
			}}
		},
		corrupt: map[string]func(*testing.T, string){
			"truncated": func(t *testing.T, dir string) {
				p := filepath.Join(dir, "grubenv")
				b, _ := os.ReadFile(p)
				if err := os.WriteFile(p, b[:500], 0o644); err != nil {
					t.Fatal(err)
				}
			},
			"no header":       writeFile("grubenv", pad("atrium_default=a\n")),
			"unknown slot":    writeFile("grubenv", pad(envHeader+"atrium_default=c\n")),
			"tries not digit": writeFile("grubenv", pad(envHeader+"atrium_try=b\natrium_tries_left=x\n")),
			"junk in padding": writeFile("grubenv", pad(envHeader+"atrium_default=a\n###junk")),
			"line without =":  writeFile("grubenv", pad(envHeader+"atrium_default\n")),
		},
	},
	{
		name: "systemd-boot",
		new: func(t *testing.T) *rig {
			esp := t.TempDir()
			for name, content := range map[string]string{
				"loader/loader.conf":           "timeout 0\ndefault atrium-a.conf\neditor no\n",
				"loader/entries/atrium-a.conf": "title Atrium (a)\nlinux /a/vmlinuz\noptions root=PARTLABEL=root-a\n",
				"loader/entries/atrium-b.conf": "title Atrium (b)\nlinux /b/vmlinuz\noptions root=PARTLABEL=root-b\n",
				"loader/entries/other-os.conf": "title Not ours\nlinux /x\n",
			} {
				writeFile(name, content)(t, esp)
			}
			selected := &varSlot{v: "atrium-a.conf"}
			c, err := NewSystemdBoot(SystemdBootConfig{ESP: esp, SelectedEntry: func(context.Context) (string, error) {
				return selected.get(), nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			return &rig{ctl: c, dir: esp, boot: func(t *testing.T) Slot {
				t.Helper()
				id := bootSystemd(t, esp)
				selected.set(id)
				m := regexp.MustCompile(`^atrium-(?:try-)?([ab])[+.]`).FindStringSubmatch(id)
				if m == nil {
					t.Fatalf("systemd-boot started %q", id)
				}
				return Slot(m[1])
			}}
		},
		corrupt: map[string]func(*testing.T, string){
			"garbage entry name": writeFile("loader/entries/atrium-b+x.conf", "title junk\n"),
			"unknown slot":       writeFile("loader/entries/atrium-c.conf", "title junk\n"),
			"two entries a slot": writeFile("loader/entries/atrium-try-a+1-0.conf", "title junk\n"),
			"no default line":    writeFile("loader/loader.conf", "timeout 0\n"),
			"foreign default":    writeFile("loader/loader.conf", "default other-os.conf\n"),
		},
	},
}

func writeFile(name, content string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func pad(s string) string { return s + strings.Repeat("#", envBlockSize-len(s)) }

func readFileT(t *testing.T, p string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(p)
	return string(b), err == nil
}

// snapshot lists every file under dir with its content, to show that a
// refused operation changed nothing.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, fmt.Sprintf("%s: %q", rel, b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func forEachRig(t *testing.T, f func(t *testing.T, r *rig)) {
	for _, k := range rigKinds {
		t.Run(k.name, func(t *testing.T) { f(t, k.new(t)) })
	}
}

func wantStatus(t *testing.T, c Control, want Status) {
	t.Helper()
	got, err := c.Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Status:\n got %+v\nwant %+v", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantBoot(t *testing.T, r *rig, want Slot) {
	t.Helper()
	if got := r.boot(t); got != want {
		t.Fatalf("loader booted slot %q, want %q", got, want)
	}
}

func TestFresh(t *testing.T) {
	forEachRig(t, func(t *testing.T, r *rig) {
		wantStatus(t, r.ctl, Status{Booted: SlotA, Default: SlotA})
		wantBoot(t, r, SlotA)
		wantBoot(t, r, SlotA)
		wantStatus(t, r.ctl, Status{Booted: SlotA, Default: SlotA})
	})
}

func TestTryBootBless(t *testing.T) {
	forEachRig(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		must(t, r.ctl.TryNext(ctx, SlotB, 3))
		wantStatus(t, r.ctl, Status{Booted: SlotA, Default: SlotA, Trying: SlotB, TriesLeft: 3})
		must(t, r.ctl.TryNext(ctx, SlotB, 3)) // idempotent
		wantStatus(t, r.ctl, Status{Booted: SlotA, Default: SlotA, Trying: SlotB, TriesLeft: 3})
		wantBoot(t, r, SlotB)
		wantStatus(t, r.ctl, Status{Booted: SlotB, Default: SlotA, Trying: SlotB, TriesLeft: 2, TriesDone: 1})
		must(t, r.ctl.Bless(ctx, SlotB))
		wantStatus(t, r.ctl, Status{Booted: SlotB, Default: SlotB})
		must(t, r.ctl.Bless(ctx, SlotB)) // idempotent
		wantStatus(t, r.ctl, Status{Booted: SlotB, Default: SlotB})
		for range 4 {
			wantBoot(t, r, SlotB)
		}
		wantStatus(t, r.ctl, Status{Booted: SlotB, Default: SlotB})

		// And back the other way: b is now the fallback.
		must(t, r.ctl.TryNext(ctx, SlotA, 2))
		wantBoot(t, r, SlotA)
		wantStatus(t, r.ctl, Status{Booted: SlotA, Default: SlotB, Trying: SlotA, TriesLeft: 1, TriesDone: 1})
		must(t, r.ctl.Bless(ctx, SlotA))
		wantBoot(t, r, SlotA)
		wantStatus(t, r.ctl, Status{Booted: SlotA, Default: SlotA})
	})
}

func TestTriesRunOutFallBack(t *testing.T) {
	for _, slots := range [][2]Slot{{SlotA, SlotB}, {SlotB, SlotA}} {
		old, next := slots[0], slots[1]
		t.Run(fmt.Sprintf("%s to %s", old, next), func(t *testing.T) {
			forEachRig(t, func(t *testing.T, r *rig) {
				ctx := context.Background()
				if old == SlotB { // get b blessed first
					must(t, r.ctl.TryNext(ctx, SlotB, 1))
					wantBoot(t, r, SlotB)
					must(t, r.ctl.Bless(ctx, SlotB))
				}
				must(t, r.ctl.TryNext(ctx, next, 3))
				for i := 1; i <= 3; i++ {
					wantBoot(t, r, next) // the health gate never blesses
					wantStatus(t, r.ctl, Status{Booted: next, Default: old, Trying: next, TriesLeft: 3 - i, TriesDone: i})
				}
				wantBoot(t, r, old)
				wantStatus(t, r.ctl, Status{Booted: old, Default: old, Bad: []Slot{next}})
				wantBoot(t, r, old)
				wantStatus(t, r.ctl, Status{Booted: old, Default: old, Bad: []Slot{next}})
				if err := r.ctl.Bless(ctx, next); !errors.Is(err, ErrNotBooted) {
					t.Fatalf("Bless(bad, not booted) = %v, want ErrNotBooted", err)
				}
				// A new image in the bad slot gets a fresh chance.
				must(t, r.ctl.TryNext(ctx, next, 2))
				wantStatus(t, r.ctl, Status{Booted: old, Default: old, Trying: next, TriesLeft: 2})
				wantBoot(t, r, next)
			})
		})
	}
}

func TestReject(t *testing.T) {
	forEachRig(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		must(t, r.ctl.TryNext(ctx, SlotB, 3))
		wantBoot(t, r, SlotB)
		must(t, r.ctl.Reject(ctx, SlotB))
		wantStatus(t, r.ctl, Status{Booted: SlotB, Default: SlotA, Bad: []Slot{SlotB}})
		must(t, r.ctl.Reject(ctx, SlotB)) // idempotent
		wantStatus(t, r.ctl, Status{Booted: SlotB, Default: SlotA, Bad: []Slot{SlotB}})
		wantBoot(t, r, SlotA)
		wantStatus(t, r.ctl, Status{Booted: SlotA, Default: SlotA, Bad: []Slot{SlotB}})
		wantBoot(t, r, SlotA)
	})
}

func TestBlessDefaultLeavesTrial(t *testing.T) {
	forEachRig(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		must(t, r.ctl.TryNext(ctx, SlotB, 2))
		must(t, r.ctl.Bless(ctx, SlotA)) // a runs and is the default: nothing to do
		wantStatus(t, r.ctl, Status{Booted: SlotA, Default: SlotA, Trying: SlotB, TriesLeft: 2})
		wantBoot(t, r, SlotB)
	})
}

func TestRefusals(t *testing.T) {
	forEachRig(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		must(t, r.ctl.TryNext(ctx, SlotB, 3))
		before := snapshot(t, r.dir)
		for _, c := range []struct {
			name string
			err  error
			want error
		}{
			{"try default", r.ctl.TryNext(ctx, SlotA, 3), ErrIsDefault},
			{"try unknown", r.ctl.TryNext(ctx, "c", 3), ErrUnknownSlot},
			{"try empty", r.ctl.TryNext(ctx, "", 3), ErrUnknownSlot},
			{"zero tries", r.ctl.TryNext(ctx, SlotB, 0), ErrBadTries},
			{"too many tries", r.ctl.TryNext(ctx, SlotB, MaxTries+1), ErrBadTries},
			{"bless not booted", r.ctl.Bless(ctx, SlotB), ErrNotBooted},
			{"bless unknown", r.ctl.Bless(ctx, "A"), ErrUnknownSlot},
			{"reject default", r.ctl.Reject(ctx, SlotA), ErrIsDefault},
			{"reject unknown", r.ctl.Reject(ctx, "z"), ErrUnknownSlot},
		} {
			if !errors.Is(c.err, c.want) {
				t.Errorf("%s: got %v, want %v", c.name, c.err, c.want)
			}
		}
		if after := snapshot(t, r.dir); after != before {
			t.Fatalf("refused operations changed the state:\n%s\n---\n%s", before, after)
		}
		wantStatus(t, r.ctl, Status{Booted: SlotA, Default: SlotA, Trying: SlotB, TriesLeft: 3})
	})
}

func TestCorruptStateRefused(t *testing.T) {
	for _, k := range rigKinds {
		for name, damage := range k.corrupt {
			t.Run(k.name+"/"+name, func(t *testing.T) {
				r := k.new(t)
				ctx := context.Background()
				damage(t, r.dir)
				before := snapshot(t, r.dir)
				for op, err := range map[string]error{
					"status": func() error { _, err := r.ctl.Status(ctx); return err }(),
					"try":    r.ctl.TryNext(ctx, SlotB, 3),
					"bless":  r.ctl.Bless(ctx, SlotA),
					"reject": r.ctl.Reject(ctx, SlotB),
				} {
					if !errors.Is(err, ErrCorrupt) {
						t.Errorf("%s: got %v, want ErrCorrupt", op, err)
					} else {
						t.Logf("%s: %v", op, err)
					}
				}
				if after := snapshot(t, r.dir); after != before {
					t.Fatalf("corrupt state was changed:\n%s\n---\n%s", before, after)
				}
			})
		}
	}
}

func TestCanceledContext(t *testing.T) {
	forEachRig(t, func(t *testing.T, r *rig) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		before := snapshot(t, r.dir)
		if err := r.ctl.TryNext(ctx, SlotB, 3); !errors.Is(err, context.Canceled) {
			t.Fatalf("TryNext = %v, want context.Canceled", err)
		}
		if snapshot(t, r.dir) != before {
			t.Fatal("canceled TryNext changed the state")
		}
	})
}

// TestConcurrentReads reads while another goroutine changes the state:
// every read must succeed and see a whole state, never a half-written one.
func TestConcurrentReads(t *testing.T) {
	forEachRig(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		var wg sync.WaitGroup
		stop := make(chan struct{})
		errc := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					st, err := r.ctl.Status(ctx)
					if err == nil && (st.Default != SlotA || (st.Trying != "" && st.Trying != SlotB)) {
						err = fmt.Errorf("impossible status %+v", st)
					}
					if err != nil {
						errc <- err
						return
					}
				}
			})
		}
		for i := range 30 {
			must(t, r.ctl.TryNext(ctx, SlotB, 1+i%MaxTries))
			must(t, r.ctl.Reject(ctx, SlotB))
		}
		close(stop)
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
	})
}
