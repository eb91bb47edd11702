# The fuzz targets (tests/fuzz/<name>.c) and the module library that holds everything each
# calls, as name:library. Read by the libFuzzer build (tests/fuzz/CMakeLists.txt, GAZE_FUZZ=ON)
# and by the replay tests of every build (tests/CMakeLists.txt: fuzz_replay_<name> replays
# tests/fuzz/regressions/<name>/). Targets of gaze_engine or gaze_store link FAISS (C++), so
# they are linked as C++.
set(GZ_FUZZ_TARGETS
  fuzz_config:gaze_core
  fuzz_safetensors:gaze_core
  fuzz_st_index:gaze_core
  fuzz_torchbin:gaze_core
  fuzz_eval_load:gaze_eval
  fuzz_image:gaze_vision
  fuzz_tokenize:gaze_text
  fuzz_tokenizer_files:gaze_text
  fuzz_records:gaze_engine
  fuzz_vindex_load:gaze_store
  fuzz_factory:gaze_store)
# fuzz_image_<format>: fuzz_image.c built for one decoder (GZ_FUZZ_IMAGE_FORMAT, see there).
foreach(fmt jpeg png webp gif heif tiff bmp)
  list(APPEND GZ_FUZZ_TARGETS fuzz_image_${fmt}:gaze_vision)
endforeach()

# gz_fuzz_source(NAME SRC_VAR DEFS_VAR): the source file of target NAME and its extra compile
# definitions.
function(gz_fuzz_source name src_var defs_var)
  if(name MATCHES "^fuzz_image_(.+)$")
    set(${src_var} ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_image.c PARENT_SCOPE)
    set(${defs_var} "GZ_FUZZ_IMAGE_FORMAT=\"${CMAKE_MATCH_1}\"" PARENT_SCOPE)
  else()
    set(${src_var} ${CMAKE_SOURCE_DIR}/tests/fuzz/${name}.c PARENT_SCOPE)
    set(${defs_var} "" PARENT_SCOPE)
  endif()
endfunction()

# Every fuzz_*.c must be listed above: a new target silently left unbuilt would never run.
file(GLOB GZ_FUZZ_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
foreach(src ${GZ_FUZZ_SRC})
  get_filename_component(name ${src} NAME_WE)
  if(NOT "${GZ_FUZZ_TARGETS}" MATCHES "(^|;)${name}:")
    message(FATAL_ERROR "tests/fuzz/${name}.c is not listed in GZ_FUZZ_TARGETS "
      "(tests/fuzz/targets.cmake) with the library it links")
  endif()
endforeach()
