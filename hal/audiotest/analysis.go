package audiotest

import (
	"math"
	"math/bits"
	"math/cmplx"
)

// fft transforms x in place (radix 2; len(x) must be a power of two). With
// inverse it computes the unscaled inverse transform.
func fft(x []complex128, inverse bool) {
	n := len(x)
	if n <= 1 {
		return
	}
	shift := 64 - bits.TrailingZeros(uint(n))
	for i := range x {
		j := int(bits.Reverse64(uint64(i)) >> shift)
		if j > i {
			x[i], x[j] = x[j], x[i]
		}
	}
	sign := -1.0
	if inverse {
		sign = 1
	}
	for size := 2; size <= n; size <<= 1 {
		step := cmplx.Rect(1, sign*2*math.Pi/float64(size))
		half := size / 2
		for start := 0; start < n; start += size {
			w := complex(1, 0)
			for k := range half {
				a, b := x[start+k], x[start+k+half]*w
				x[start+k], x[start+k+half] = a+b, a-b
				w *= step
			}
		}
	}
}

// crossCorrelate returns c[L] = Σ_m rec[L+m]·ref[m] for L in
// 0..len(rec)-len(ref), through the FFT (a direct sum over a few seconds
// at 48 kHz would take billions of multiplications).
func crossCorrelate(rec, ref []float64) []float64 {
	lags := len(rec) - len(ref) + 1
	if lags <= 0 || len(ref) == 0 {
		return nil
	}
	n := 1
	for n < len(rec)+len(ref) {
		n <<= 1
	}
	a := make([]complex128, n)
	b := make([]complex128, n)
	for i, v := range rec {
		a[i] = complex(v, 0)
	}
	for i, v := range ref {
		b[i] = complex(v, 0)
	}
	fft(a, false)
	fft(b, false)
	for i := range a {
		a[i] *= cmplx.Conj(b[i])
	}
	fft(a, true)
	out := make([]float64, lags)
	for i := range out {
		out[i] = real(a[i]) / float64(n)
	}
	return out
}

// energies holds the running sum of squares of a signal, so the energy of
// any window costs two lookups.
type energies []float64

func newEnergies(x []float64) energies {
	e := make(energies, len(x)+1)
	for i, v := range x {
		e[i+1] = e[i] + v*v
	}
	return e
}

// window is the energy of x[from:from+n].
func (e energies) window(from, n int) float64 {
	return max(e[from+n]-e[from], 0)
}

// meanPower is the mean square of x.
func meanPower(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += v * v
	}
	return s / float64(len(x))
}

// dB converts a power ratio to decibels; zero power is -Inf.
func dB(power float64) float64 { return 10 * math.Log10(power) }
