{
  "targets": [
    {
      "target_name": "crossway_native",
      "sources": ["src/addon.cc", "src/errors.cc", "src/sockets.cc", "src/files.cc", "src/memory.cc", "src/watcher.cc", "src/ioctl_pointers.cc", "src/guarded_copy.cc", "src/ioctl_queue.cc", "src/event_loop.cc", "src/wayland_scan.cc", "src/fast_path.cc", "src/device_fast_path.cc", "src/deadline_timer.cc", "src/inline_loop.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-fexceptions"]
    }
  ]
}
