# IsoflowStage.cmake - isoflow_add_stage(): builds a stage written against
# sdk/include/isoflow/stage.h to a .wasm (always) and a native .so (NATIVE),
# with the SDK runtime (sdk/src/stage_sdk.c) compiled in.  The same flags as
# `isoflow build` (src/cli/cmd_build.c); keep the two in step.
#
#   isoflow_add_stage(NAME SOURCES a.c ... [NATIVE] [OUTPUT_DIRECTORY dir]
#                     [INCLUDES dir ...] [CFLAGS ...])
#
# Produces <dir>/NAME.wasm (target NAME, built by `all`): freestanding
# wasm32, `clang-19 --target=wasm32 -O2 -mbulk-memory -nostdlib
# -Wl,--no-entry`; exports come from the SDK's export_name attributes, the
# only imports are the "isoflow" functions.  With NATIVE also <dir>/NAME.so
# (target NAME_native, a MODULE library built with the host compiler,
# -fPIC -shared, hidden visibility but for the SDK's isoflow_* exports,
# -ffp-contract=off so float results match the .wasm bit for bit).
# Sets NAME_WASM and NAME_SO in the caller's scope.  OUTPUT_DIRECTORY
# defaults to the current binary directory.

get_filename_component(ISOFLOW_SDK_DIR "${CMAKE_CURRENT_LIST_DIR}/../sdk"
                       ABSOLUTE)

function(isoflow_add_stage name)
  cmake_parse_arguments(PARSE_ARGV 1 S "NATIVE" "OUTPUT_DIRECTORY"
                        "SOURCES;INCLUDES;CFLAGS")
  if(NOT S_SOURCES)
    message(FATAL_ERROR "isoflow_add_stage(${name}): no SOURCES")
  endif()
  if(NOT S_OUTPUT_DIRECTORY)
    set(S_OUTPUT_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
  set(srcs)
  foreach(s IN LISTS S_SOURCES)
    if(NOT IS_ABSOLUTE "${s}")
      set(s "${CMAKE_CURRENT_SOURCE_DIR}/${s}")
    endif()
    list(APPEND srcs "${s}")
  endforeach()
  list(APPEND srcs "${ISOFLOW_SDK_DIR}/src/stage_sdk.c")
  set(incs "-I${ISOFLOW_SDK_DIR}/include")
  foreach(d IN LISTS S_INCLUDES)
    list(APPEND incs "-I${d}")
  endforeach()

  # .wasm: one object per source (depfiles track headers), then one link.
  set(out "${S_OUTPUT_DIRECTORY}/${name}.wasm")
  set(objdir "${CMAKE_CURRENT_BINARY_DIR}/${name}.stage.dir")
  file(MAKE_DIRECTORY "${S_OUTPUT_DIRECTORY}" "${objdir}")
  set(objs)
  set(i 0)
  foreach(s IN LISTS srcs)
    get_filename_component(base "${s}" NAME_WE)
    set(obj "${objdir}/${i}_${base}.o")
    add_custom_command(
      OUTPUT "${obj}"
      COMMAND "${ISOFLOW_WASM_CC}" --target=wasm32 -std=c11 -O2
              -mbulk-memory -Wall -Wextra -Werror ${incs} ${S_CFLAGS}
              -MD -MF "${obj}.d" -c "${s}" -o "${obj}"
      DEPENDS "${s}"
      DEPFILE "${obj}.d"
      COMMENT "Compiling ${s} for stage ${name}.wasm"
      VERBATIM)
    list(APPEND objs "${obj}")
    math(EXPR i "${i} + 1")
  endforeach()
  add_custom_command(
    OUTPUT "${out}"
    COMMAND "${ISOFLOW_WASM_CC}" --target=wasm32 -O2 -nostdlib
            -Wl,--no-entry ${objs} -o "${out}"
    DEPENDS ${objs}
    COMMENT "Linking stage ${out}"
    VERBATIM)
  add_custom_target(${name} ALL DEPENDS "${out}")
  set(${name}_WASM "${out}" PARENT_SCOPE)

  if(S_NATIVE)
    add_library(${name}_native MODULE ${srcs})
    set_target_properties(${name}_native PROPERTIES
      PREFIX ""
      OUTPUT_NAME "${name}"
      LIBRARY_OUTPUT_DIRECTORY "${S_OUTPUT_DIRECTORY}"
      C_VISIBILITY_PRESET hidden)
    target_include_directories(${name}_native PRIVATE
      "${ISOFLOW_SDK_DIR}/include" ${S_INCLUDES})
    target_compile_options(${name}_native PRIVATE -ffp-contract=off
                           -fno-math-errno ${S_CFLAGS})
    set(${name}_SO "${S_OUTPUT_DIRECTORY}/${name}.so" PARENT_SCOPE)
  endif()
endfunction()
