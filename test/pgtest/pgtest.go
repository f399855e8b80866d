// Package pgtest starts Debian's PostgreSQL for a test: a fresh cluster
// (initdb) in a temporary directory, a postmaster on a free loopback port
// with its socket in that directory, a new database per caller, and a clean
// stop (SIGINT, PostgreSQL's "fast" shutdown) at the end of the test.
//
// PostgreSQL refuses to run as root, so under root the harness runs initdb
// and postgres as the "postgres" system user that Debian's package creates,
// with the directory given to it. A machine without PostgreSQL fails the
// test loudly (install Debian's "postgresql" package): it never skips.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/atriumroom/atrium/test/syncbuf"
)

// BinGlob is where Debian installs the server programs, one directory per
// major version.
const BinGlob = "/usr/lib/postgresql/*/bin"

// Server is a running PostgreSQL cluster owned by one test.
type Server struct {
	Port int
	dir  string
	log  syncbuf.Buffer
	done chan struct{} // closed when the postmaster has exited
	err  error         // its Wait result, set before done closes
}

// Start initialises a cluster and starts it; t's cleanup stops it and
// removes its files. The postgres process's output goes to the test log
// when the test fails.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBin(BinGlob)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cred, uid, gid, err := credential()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// Not t.TempDir: its parent is private to root, and the postgres user
	// must reach the directory.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("pgtest: give %s to the postgres user: %v", dir, err)
		}
	}
	data := filepath.Join(dir, "data")
	s := &Server{dir: dir, done: make(chan struct{})}

	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}

	s.Port, err = freePort()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	// fsync off: a test cluster need not survive a power cut, and syncing
	// would slow every commit.
	pg := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(s.Port),
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	pg.Dir = dir
	pg.Stdout, pg.Stderr = &s.log, &s.log
	pg.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := pg.Start(); err != nil {
		t.Fatalf("pgtest: start postgres: %v", err)
	}
	go func() {
		s.err = pg.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if err := s.stop(pg.Process); err != nil {
			t.Errorf("pgtest: %v", err)
		}
		if t.Failed() {
			t.Logf("--- postgres log ---\n%s", s.log.String())
		}
	})
	if err := s.waitReady(30 * time.Second); err != nil {
		t.Fatalf("pgtest: %v\n--- postgres log ---\n%s", err, s.log.String())
	}
	return s
}

// findBin returns the newest PostgreSQL bin directory matching glob.
func findBin(glob string) (string, error) {
	dirs, _ := filepath.Glob(glob)
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return "", fmt.Errorf("PostgreSQL not found (%s/postgres): install Debian's postgresql package", glob)
	}
	sort.Slice(ok, func(i, j int) bool { return majorOf(ok[i]) < majorOf(ok[j]) })
	return ok[len(ok)-1], nil
}

func majorOf(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

// credential returns the postgres user's credential when running as root,
// nil otherwise.
func credential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, 0, 0, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root needs the postgres system user (Debian's postgresql package creates it): %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, 0, 0, fmt.Errorf("postgres user ids: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

// freePort asks the kernel for an unused loopback port. Another process
// could take it before postgres binds; then postgres exits and Start fails
// with its log, which is rare enough for tests.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DSN returns the URL of a database on this server (over TCP on loopback).
func (s *Server) DSN(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, database)
}

// waitReady polls until the server answers a query, or fails early when
// the postmaster dies.
func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited during start-up: %v", s.err)
		default:
		}
		last = s.ping()
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("postgres not ready after %v: %v", timeout, last)
}

func (s *Server) ping() error {
	db, err := sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// NewDatabase creates an empty database and returns its DSN. Each test gets
// its own, so tests never see each other's rows. The database is left for
// the cluster's removal at cleanup.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	db, err := sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return s.DSN(name)
}

// stop asks for a fast shutdown (SIGINT: sessions are ended, the cluster
// is checkpointed) and waits; after 30 s it kills the postmaster.
func (s *Server) stop(p *os.Process) error {
	select {
	case <-s.done:
		return fmt.Errorf("postgres had exited before the end of the test: %v", s.err)
	default:
	}
	if err := p.Signal(syscall.SIGINT); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	select {
	case <-s.done:
		if s.err != nil {
			return fmt.Errorf("postgres stopped with %v", s.err)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = p.Kill()
		<-s.done
		return errors.New("postgres did not stop within 30 s of SIGINT; killed")
	}
}
