# combine_archives.cmake - merge static archives into one (cmake -P, called at build time).
# -DOUT=libgaze.a -DAR=ar -DINPUTS="a.a|b.a" (| separates: a ; would split the argument). An ar MRI script keeps every member, even two
# members of the same name from different archives, which "ar x" into one folder would not.
string(REPLACE "|" ";" INPUTS "${INPUTS}")
set(script "CREATE ${OUT}\n")
foreach(lib ${INPUTS})
  string(APPEND script "ADDLIB ${lib}\n")
endforeach()
string(APPEND script "SAVE\nEND\n")
file(WRITE ${OUT}.mri "${script}")
execute_process(COMMAND ${AR} -M INPUT_FILE ${OUT}.mri RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ar -M failed for ${OUT}")
endif()
