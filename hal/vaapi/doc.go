// Package vaapi lists the video codecs a VA-API driver offers on each DRM
// render node (/dev/dri/renderD*): for H.264, VP8 and VP9, whether the GPU
// encodes (VAEntrypointEncSlice or EncSliceLP) and decodes (VAEntrypointVLD),
// and the largest picture (VAConfigAttribMaxPictureWidth/Height).
//
// It is a probe only. The devices it lists carry hal.Info and Codecs (so
// roomctl devices and the API show them, with Hardware true) but do not
// implement hal.VideoEncoderFactory or hal.VideoDecoderFactory: they cannot
// encode or decode yet, so the media layer and hal/codecsel, which take
// only factories, never offer them a session. VA-API encoding would come
// through pion/mediadevices' vaapi package (VP8 and VP9 only).
//
// The libva calls (vaGetDisplayDRM, vaInitialize, vaQueryConfigProfiles,
// vaQueryConfigEntrypoints, vaGetConfigAttributes) live behind Prober, in
// the cgo file libva.go (pkg-config libva libva-drm; Debian: libva-dev).
// Everything else, the mapping of profiles and entrypoints to codecs
// included, is plain Go and tested with a fake Prober. Built without cgo,
// the package still compiles and lists nothing. A machine with no render
// node, or no VA-API driver for its GPU, has no devices and no error.
package vaapi
