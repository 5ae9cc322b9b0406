function(bulwark_set_warnings target)
  target_compile_options(${target} INTERFACE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Wunused -Woverloaded-virtual -Wdouble-promotion
    -Wformat=2 -Wimplicit-fallthrough
    # Boost.Asio's coroutine machinery trips these inside its own headers.
    -Wno-maybe-uninitialized -Wno-mismatched-new-delete)
endfunction()
