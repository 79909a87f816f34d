# Sourced on a GPU machine without Java: unpacks a TornadoVM SDK + JDK archive (see README,
# 'Running on a GPU with TornadoVM') and points JAVA_HOME/TORNADOVM_HOME at it.
#   PA_DEVICE_ARCHIVE  the archive (default .tornado/device.tar.xz; layout jdk/ and sdk/)
#   PA_SDK_DIR         where it is unpacked (default: a scratch folder under $TMPDIR or /tmp)
archive="${PA_DEVICE_ARCHIVE:-.tornado/device.tar.xz}"
if [[ ! -f "$archive" ]]; then
  echo "no SDK archive at $archive (set PA_DEVICE_ARCHIVE)" >&2
  return 1 2>/dev/null || exit 1
fi
sdk_dir="${PA_SDK_DIR:-${TMPDIR:-/tmp}/pa-sdk}"
mkdir -p "$sdk_dir"
[[ -x "$sdk_dir/jdk/bin/java" ]] || tar -xJf "$archive" -C "$sdk_dir"
export JAVA_HOME="$sdk_dir/jdk" TORNADOVM_HOME="$sdk_dir/sdk"
export PATH="$TORNADOVM_HOME/bin:$JAVA_HOME/bin:$PATH"
# Charts need at least one font. A bare GPU image may have none: point fontconfig at a folder of
# TTF files (PA_FONTS_DIR, default .tornado/fonts) when fc-list finds nothing.
fonts="${PA_FONTS_DIR:-.tornado/fonts}"
if [[ -d "$fonts" ]] && [[ -z "$(fc-list 2>/dev/null | head -1)" ]]; then
  cat > "$sdk_dir/fonts.conf" <<CONF
<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig><dir>$(cd "$fonts" && pwd)</dir><cachedir>$sdk_dir/fontcache</cachedir></fontconfig>
CONF
  export FONTCONFIG_FILE="$sdk_dir/fonts.conf"
  # ... and, where the image has no libfontconfig, to a folder holding it (PA_FONT_LIBS).
  fontlibs="${PA_FONT_LIBS:-.tornado/fontlib}"
  if ! ldconfig -p 2>/dev/null | grep -q libfontconfig && [[ -d "$fontlibs" ]]; then
    export LD_LIBRARY_PATH="$(cd "$fontlibs" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
