package v4l2

// VideoMaxPlanes is VIDEO_MAX_PLANES: the most planes a multi-planar format
// has.
const VideoMaxPlanes = 8

// Capabilities (struct v4l2_capability's capabilities and device_caps).
const (
	CapVideoCapture       = 0x00000001
	CapVideoOutput        = 0x00000002
	CapVideoOverlay       = 0x00000004
	CapVBICapture         = 0x00000010
	CapVBIOutput          = 0x00000020
	CapSlicedVBICapture   = 0x00000040
	CapSlicedVBIOutput    = 0x00000080
	CapRDSCapture         = 0x00000100
	CapVideoOutputOverlay = 0x00000200
	CapVideoCaptureMPlane = 0x00001000
	CapVideoOutputMPlane  = 0x00002000
	CapVideoM2MMPlane     = 0x00004000
	CapVideoM2M           = 0x00008000
	CapTuner              = 0x00010000
	CapAudio              = 0x00020000
	CapRadio              = 0x00040000
	CapModulator          = 0x00080000
	CapSDRCapture         = 0x00100000
	CapExtPixFormat       = 0x00200000
	CapSDROutput          = 0x00400000
	CapMetaCapture        = 0x00800000
	CapReadWrite          = 0x01000000
	CapStreaming          = 0x04000000
	CapMetaOutput         = 0x08000000
	CapTouch              = 0x10000000
	CapIOMC               = 0x20000000
	CapDeviceCaps         = 0x80000000
)

// Buffer types (enum v4l2_buf_type).
const (
	BufTypeVideoCapture       = 1
	BufTypeVideoOutput        = 2
	BufTypeVideoOverlay       = 3
	BufTypeVBICapture         = 4
	BufTypeVBIOutput          = 5
	BufTypeSlicedVBICapture   = 6
	BufTypeSlicedVBIOutput    = 7
	BufTypeVideoOutputOverlay = 8
	BufTypeVideoCaptureMPlane = 9
	BufTypeVideoOutputMPlane  = 10
	BufTypeSDRCapture         = 11
	BufTypeSDROutput          = 12
	BufTypeMetaCapture        = 13
	BufTypeMetaOutput         = 14
)

// IsMPlane reports whether a buffer type is multi-planar (PlaneBuffer,
// PixFormatMPlane).
func IsMPlane(bufType uint32) bool {
	return bufType == BufTypeVideoCaptureMPlane || bufType == BufTypeVideoOutputMPlane
}

// Memory types (enum v4l2_memory).
const (
	MemoryMMAP    = 1
	MemoryUserPtr = 2
	MemoryOverlay = 3
	MemoryDMABuf  = 4
)

// Fields (enum v4l2_field).
const (
	FieldAny        = 0
	FieldNone       = 1
	FieldTop        = 2
	FieldBottom     = 3
	FieldInterlaced = 4
)

// Colorspaces (enum v4l2_colorspace), the ones codecs set.
const (
	ColorspaceDefault = 0
	ColorspaceREC709  = 3
	ColorspaceSRGB    = 8
)

// Format description flags (struct v4l2_fmtdesc's flags).
const (
	FmtFlagCompressed           = 0x0001
	FmtFlagEmulated             = 0x0002
	FmtFlagContinuousBytestream = 0x0004
	FmtFlagDynResolution        = 0x0008
	FmtFlagEncCapFrameInterval  = 0x0010
)

// Frame size and interval enumeration types.
const (
	FrmSizeTypeDiscrete   = 1
	FrmSizeTypeContinuous = 2
	FrmSizeTypeStepwise   = 3

	FrmIvalTypeDiscrete   = 1
	FrmIvalTypeContinuous = 2
	FrmIvalTypeStepwise   = 3
)

// CapTimePerFrame is V4L2_CAP_TIMEPERFRAME in CaptureParm.Capability: the
// frame interval can be set with VIDIOC_S_PARM.
const CapTimePerFrame = 0x1000

// Buffer capabilities (struct v4l2_requestbuffers's capabilities).
const (
	BufCapSupportsMMAP              = 1 << 0
	BufCapSupportsUserPtr           = 1 << 1
	BufCapSupportsDMABuf            = 1 << 2
	BufCapSupportsRequests          = 1 << 3
	BufCapSupportsOrphanedBufs      = 1 << 4
	BufCapSupportsM2MHoldCaptureBuf = 1 << 5
	BufCapSupportsMMAPCacheHints    = 1 << 6
	BufCapSupportsMaxNumBuffers     = 1 << 7
	BufCapSupportsRemoveBufs        = 1 << 8
)

// Buffer flags (struct v4l2_buffer's flags).
const (
	BufFlagMapped             = 0x00000001
	BufFlagQueued             = 0x00000002
	BufFlagDone               = 0x00000004
	BufFlagKeyframe           = 0x00000008
	BufFlagPFrame             = 0x00000010
	BufFlagBFrame             = 0x00000020
	BufFlagError              = 0x00000040
	BufFlagInRequest          = 0x00000080
	BufFlagTimecode           = 0x00000100
	BufFlagM2MHoldCaptureBuf  = 0x00000200
	BufFlagPrepared           = 0x00000400
	BufFlagTimestampMask      = 0x0000e000
	BufFlagTimestampUnknown   = 0x00000000
	BufFlagTimestampMonotonic = 0x00002000
	BufFlagTimestampCopy      = 0x00004000
	BufFlagTstampSrcMask      = 0x00070000
	BufFlagTstampSrcEOF       = 0x00000000
	BufFlagTstampSrcSOE       = 0x00010000
	BufFlagLast               = 0x00100000
	BufFlagRequestFD          = 0x00800000
)

// Control types (enum v4l2_ctrl_type).
const (
	CtrlTypeInteger     = 1
	CtrlTypeBoolean     = 2
	CtrlTypeMenu        = 3
	CtrlTypeButton      = 4
	CtrlTypeInteger64   = 5
	CtrlTypeCtrlClass   = 6
	CtrlTypeString      = 7
	CtrlTypeBitmask     = 8
	CtrlTypeIntegerMenu = 9
	CtrlTypeU8          = 0x0100
	CtrlTypeU16         = 0x0101
	CtrlTypeU32         = 0x0102
	CtrlTypeArea        = 0x0106
)

// Control flags (struct v4l2_queryctrl's flags), and the flags ORed into an
// ID to enumerate.
const (
	CtrlFlagDisabled       = 0x0001
	CtrlFlagGrabbed        = 0x0002
	CtrlFlagReadOnly       = 0x0004
	CtrlFlagUpdate         = 0x0008
	CtrlFlagInactive       = 0x0010
	CtrlFlagSlider         = 0x0020
	CtrlFlagWriteOnly      = 0x0040
	CtrlFlagVolatile       = 0x0080
	CtrlFlagHasPayload     = 0x0100
	CtrlFlagExecuteOnWrite = 0x0200
	CtrlFlagModifyLayout   = 0x0400
	CtrlFlagDynamicArray   = 0x0800

	CtrlFlagNextCtrl     = 0x80000000
	CtrlFlagNextCompound = 0x40000000
)

// CtrlIDMask is V4L2_CTRL_ID_MASK: the bits of an ID without the
// enumeration flags.
const CtrlIDMask = 0x0fffffff

// Values of ExtControls.Which.
const (
	CtrlWhichCurVal     = 0
	CtrlWhichDefVal     = 0x0f000000
	CtrlWhichRequestVal = 0x0f010000
)

// Control classes.
const (
	CtrlClassUser   = 0x00980000
	CtrlClassCodec  = 0x00990000
	CtrlClassCamera = 0x009a0000
)

// CtrlClass returns the class of a control ID.
func CtrlClass(id uint32) uint32 { return id & 0x0fff0000 }

// Control IDs of the user class.
const (
	CIDBase                    = CtrlClassUser | 0x900
	CIDBrightness              = CIDBase + 0
	CIDContrast                = CIDBase + 1
	CIDSaturation              = CIDBase + 2
	CIDHue                     = CIDBase + 3
	CIDAudioVolume             = CIDBase + 5
	CIDAudioMute               = CIDBase + 9
	CIDAutoWhiteBalance        = CIDBase + 12
	CIDExposure                = CIDBase + 17
	CIDAutogain                = CIDBase + 18
	CIDGain                    = CIDBase + 19
	CIDHFlip                   = CIDBase + 20
	CIDVFlip                   = CIDBase + 21
	CIDPowerLineFrequency      = CIDBase + 24
	CIDWhiteBalanceTemperature = CIDBase + 26
	CIDSharpness               = CIDBase + 27
	CIDBacklightCompensation   = CIDBase + 28
	CIDMinBuffersForCapture    = CIDBase + 39
	CIDMinBuffersForOutput     = CIDBase + 40
)

// Control IDs of the camera class.
const (
	CIDCameraClassBase     = CtrlClassCamera | 0x900
	CIDExposureAuto        = CIDCameraClassBase + 1
	CIDExposureAbsolute    = CIDCameraClassBase + 2
	CIDExposureAutoPrio    = CIDCameraClassBase + 3
	CIDPanRelative         = CIDCameraClassBase + 4
	CIDTiltRelative        = CIDCameraClassBase + 5
	CIDPanReset            = CIDCameraClassBase + 6
	CIDTiltReset           = CIDCameraClassBase + 7
	CIDPanAbsolute         = CIDCameraClassBase + 8
	CIDTiltAbsolute        = CIDCameraClassBase + 9
	CIDFocusAbsolute       = CIDCameraClassBase + 10
	CIDFocusRelative       = CIDCameraClassBase + 11
	CIDFocusAuto           = CIDCameraClassBase + 12
	CIDZoomAbsolute        = CIDCameraClassBase + 13
	CIDZoomRelative        = CIDCameraClassBase + 14
	CIDZoomContinuous      = CIDCameraClassBase + 15
	CIDPrivacy             = CIDCameraClassBase + 16
	CIDAutoFocusStart      = CIDCameraClassBase + 28
	CIDAutoFocusStop       = CIDCameraClassBase + 29
	CIDAutoExposureBias    = CIDCameraClassBase + 19
	CIDAutoNPresetWhiteBal = CIDCameraClassBase + 20
)

// Values of the CIDExposureAuto menu (enum v4l2_exposure_auto_type).
const (
	ExposureAuto             = 0
	ExposureManual           = 1
	ExposureShutterPriority  = 2
	ExposureAperturePriority = 3
)

// Control IDs of the codec class (stateful encoders and decoders).
const (
	CIDCodecBase                = CtrlClassCodec | 0x900
	CIDMPEGVideoGOPSize         = CIDCodecBase + 203
	CIDMPEGVideoBitrateMode     = CIDCodecBase + 206
	CIDMPEGVideoBitrate         = CIDCodecBase + 207
	CIDMPEGVideoForceKeyFrame   = CIDCodecBase + 229
	CIDMPEGVideoH264IPeriod     = CIDCodecBase + 358
	CIDMPEGVideoH264Profile     = CIDCodecBase + 363
	CIDMPEGVideoH264Level       = CIDCodecBase + 359
	CIDFWHTIFrameQP             = CIDCodecBase + 290
	CIDFWHTPFrameQP             = CIDCodecBase + 291
	CIDMPEGVideoRepeatSeqHeader = CIDCodecBase + 226
)

// Event types.
const (
	EventTypeAll          = 0
	EventTypeVSync        = 1
	EventTypeEOS          = 2
	EventTypeCtrl         = 3
	EventTypeFrameSync    = 4
	EventTypeSourceChange = 5
	EventTypeMotionDet    = 6
)

// Event subscription flags.
const (
	EventSubFlSendInitial   = 1 << 0
	EventSubFlAllowFeedback = 1 << 1
)

// EventSrcChResolution is V4L2_EVENT_SRC_CH_RESOLUTION in
// EventSrcChange.Changes.
const EventSrcChResolution = 1 << 0

// Encoder and decoder commands.
const (
	EncCmdStart  = 0
	EncCmdStop   = 1
	EncCmdPause  = 2
	EncCmdResume = 3

	EncCmdStopAtGOPEnd = 1 << 0

	DecCmdStart  = 0
	DecCmdStop   = 1
	DecCmdPause  = 2
	DecCmdResume = 3
	DecCmdFlush  = 4
)

// Pixel formats (V4L2_PIX_FMT_*), the ones Atrium meets.
const (
	PixFmtYUYV    = 'Y' | 'U'<<8 | 'Y'<<16 | 'V'<<24 // packed 4:2:2 Y0 U Y1 V
	PixFmtUYVY    = 'U' | 'Y'<<8 | 'V'<<16 | 'Y'<<24
	PixFmtNV12    = 'N' | 'V'<<8 | '1'<<16 | '2'<<24 // Y plane, then interleaved UV, 4:2:0
	PixFmtNV21    = 'N' | 'V'<<8 | '2'<<16 | '1'<<24
	PixFmtNV12M   = 'N' | 'M'<<8 | '1'<<16 | '2'<<24 // NV12 in two memory planes
	PixFmtYUV420  = 'Y' | 'U'<<8 | '1'<<16 | '2'<<24 // I420: Y, U, V planes, 4:2:0
	PixFmtYVU420  = 'Y' | 'V'<<8 | '1'<<16 | '2'<<24
	PixFmtYUV420M = 'Y' | 'M'<<8 | '1'<<16 | '2'<<24 // I420 in three memory planes
	PixFmtYUV422P = '4' | '2'<<8 | '2'<<16 | 'P'<<24
	PixFmtGrey    = 'G' | 'R'<<8 | 'E'<<16 | 'Y'<<24
	PixFmtRGB24   = 'R' | 'G'<<8 | 'B'<<16 | '3'<<24
	PixFmtBGR24   = 'B' | 'G'<<8 | 'R'<<16 | '3'<<24
	PixFmtMJPEG   = 'M' | 'J'<<8 | 'P'<<16 | 'G'<<24
	PixFmtJPEG    = 'J' | 'P'<<8 | 'E'<<16 | 'G'<<24
	PixFmtH264    = 'H' | '2'<<8 | '6'<<16 | '4'<<24
	PixFmtVP8     = 'V' | 'P'<<8 | '8'<<16 | '0'<<24
	PixFmtVP9     = 'V' | 'P'<<8 | '9'<<16 | '0'<<24
	PixFmtFWHT    = 'F' | 'W'<<8 | 'H'<<16 | 'T'<<24 // vicodec's codec
)
