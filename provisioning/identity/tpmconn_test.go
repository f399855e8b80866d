package identity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// fakePeer is the far end of a socketTPM; got receives each command it read.
type fakePeer struct {
	got chan []byte
}

// newFakeTPM pairs a socketTPM with a peer goroutine that serves replies,
// one per command, each a list of chunks written separately (an empty list:
// read the command, answer nothing). The peer closes its end when the
// replies run out or the connection closes; the test waits for it.
func newFakeTPM(t *testing.T, timeout time.Duration, replies ...[][]byte) (*socketTPM, *fakePeer) {
	t.Helper()
	client, server := net.Pipe()
	p := &fakePeer{got: make(chan []byte, len(replies))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer server.Close()
		for _, chunks := range replies {
			hdr := make([]byte, tpmHeaderSize)
			if _, err := io.ReadFull(server, hdr); err != nil {
				return
			}
			body := make([]byte, binary.BigEndian.Uint32(hdr[2:6])-tpmHeaderSize)
			if _, err := io.ReadFull(server, body); err != nil {
				return
			}
			p.got <- append(hdr, body...)
			for _, c := range chunks {
				if _, err := server.Write(c); err != nil {
					return
				}
			}
		}
	}()
	tpm := newSocketTPM(client, timeout)
	t.Cleanup(func() {
		if err := tpm.Close(); err != nil {
			t.Error(err)
		}
		<-done
	})
	return tpm, p
}

// frame builds a TPM 2.0 message: tag, size, code, body.
func frame(code uint32, body []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, 0x8001)
	b = binary.BigEndian.AppendUint32(b, uint32(tpmHeaderSize+len(body)))
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, body...)
}

func TestSocketTPMReassemblesResponses(t *testing.T) {
	rsp1 := frame(0, []byte("response body of some length"))
	rsp2 := frame(0x101, nil) // an error code only: the header alone
	tpm, peer := newFakeTPM(t, time.Second,
		[][]byte{rsp1[:3], rsp1[3:12], rsp1[12:]},
		[][]byte{rsp2},
	)
	cmd := frame(0x17b, []byte{0, 8}) // GetRandom(8)
	got, err := tpm.Send(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, rsp1) {
		t.Errorf("response %x, want %x", got, rsp1)
	}
	if sent := <-peer.got; !bytes.Equal(sent, cmd) {
		t.Errorf("peer got %x, want %x", sent, cmd)
	}
	got, err = tpm.Send(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, rsp2) {
		t.Errorf("second response %x, want %x", got, rsp2)
	}
}

func TestSocketTPMErrors(t *testing.T) {
	cmd := frame(0x17b, []byte{0, 8})
	tooBig := frame(0, nil)
	binary.BigEndian.PutUint32(tooBig[2:6], maxTPMResponse+1)
	tooSmall := frame(0, nil)
	binary.BigEndian.PutUint32(tooSmall[2:6], 9)
	for _, c := range []struct {
		name   string
		reply  [][]byte
		silent bool
		want   error
	}{
		{"size below a header", [][]byte{tooSmall}, false, ErrTPMProtocol},
		{"size beyond the limit", [][]byte{tooBig}, false, ErrTPMProtocol},
		{"closed mid-body", [][]byte{frame(0, make([]byte, 20))[:15]}, false, io.ErrUnexpectedEOF},
		{"closed before answering", [][]byte{}, false, io.EOF},
		{"no answer in time", nil, true, os.ErrDeadlineExceeded},
	} {
		t.Run(c.name, func(t *testing.T) {
			var tpm *socketTPM
			if c.silent {
				tpm = newSilentTPM(t)
			} else {
				tpm, _ = newFakeTPM(t, 100*time.Millisecond, c.reply)
			}
			_, err := tpm.Send(cmd)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			// Where the next response starts is unknown now: the
			// connection refuses further commands.
			_, err2 := tpm.Send(cmd)
			if !errors.Is(err2, c.want) || !strings.Contains(err2.Error(), "unusable") {
				t.Errorf("second Send: err = %v, want the first error again", err2)
			}
		})
	}
}

// newSilentTPM pairs a socketTPM with a peer that reads everything and never
// answers.
func newSilentTPM(t *testing.T) *socketTPM {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, server)
	}()
	tpm := newSocketTPM(client, 100*time.Millisecond)
	t.Cleanup(func() {
		if err := tpm.Close(); err != nil {
			t.Error(err)
		}
		<-done
	})
	return tpm
}

func TestSocketTPMShortCommand(t *testing.T) {
	tpm, _ := newFakeTPM(t, time.Second)
	if _, err := tpm.Send([]byte{0x80, 0x01}); err == nil {
		t.Fatal("a 2-byte command was sent")
	}
}
